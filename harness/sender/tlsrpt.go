package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/tlsrpt"
	"github.com/miekg/dns"
)

// DeliverReports sends each TLS-RPT report (RFC 8460) to the addresses its policy domain
// publishes in _smtp._tls: mailto: addresses by SMTP through this sender (with the DANE rules of
// any delivery), https: by POST with client. from is the report's envelope sender.
func (s *Sender) DeliverReports(ctx context.Context, reports []tlsrpt.Report, from string, client *http.Client) error {
	var errs []error
	for i := range reports {
		r := &reports[i]
		if len(r.Policies) == 0 {
			continue
		}
		domain := r.Policies[0].Policy.Domain
		rua, err := s.reportAddresses(ctx, domain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mail := func(to string, msg []byte) error {
			at := strings.LastIndexByte(to, '@')
			if at < 0 {
				return fmt.Errorf("mailto:%s is not an address", to)
			}
			o := s.Attempt(ctx, &queue.Message{From: from, To: []string{to}, Domain: to[at+1:], Data: msg})
			if !o.Delivered {
				return fmt.Errorf("report to %s not delivered: %s %s", to, o.Result, o.Detail)
			}
			return nil
		}
		if err := tlsrpt.Deliver(ctx, r, rua, mail, client); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", domain, err))
		}
	}
	return errors.Join(errs...)
}

// reportAddresses reads the rua of the domain's TLS-RPT record (RFC 8460 §3). An insecure
// answer is fine (the record is not a security policy); a bogus one is not used.
func (s *Sender) reportAddresses(ctx context.Context, domain string) ([]string, error) {
	name := "_smtp._tls." + dns.Fqdn(domain)
	res, err := s.cfg.Resolver.Resolve(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	if res.Verdict == resolver.Bogus || res.Verdict == resolver.Indeterminate {
		return nil, fmt.Errorf("%s TXT %s: %s", name, res.Verdict, res.Reason)
	}
	var txts []string
	for _, rr := range res.Msg.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, ""))
		}
	}
	rec, err := tlsrpt.SelectRecord(txts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rec.RUA, nil
}
