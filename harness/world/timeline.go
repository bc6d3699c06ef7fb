package world

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/scenario"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

// Control is what the timeline needs of the lab serving the world (*lab.Lab).
type Control interface {
	AddFault(fault.Spec) (string, error)
	RemoveFault(id string) error
	ReplaceRecords(records ...string) error
}

// Sync brings the world to scenario time t: each fault in place while t is in its window,
// and each certificate renewal due by t deployed, with its TLSA records published first
// where the zone follows. It may be called again with the same or a later t; what failed
// is tried again by the next call, and every failure is in the error.
func (w *World) Sync(t time.Duration, lab Control) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := scenario.FormatAge(t)
	var errs []error
	for i, ft := range w.Faults {
		on := ft.Active(t)
		switch {
		case on && w.faultIDs[i] == "":
			id, err := lab.AddFault(ft.Spec())
			if err != nil {
				errs = append(errs, fmt.Errorf("faults[%d]: %v", i, err))
				continue
			}
			w.faultIDs[i] = id
			w.logf("+%s fault %d on: %s %s %s", at, i, ft.Mode, ft.Name, ft.Type)
		case !on && w.faultIDs[i] != "":
			if err := lab.RemoveFault(w.faultIDs[i]); err != nil {
				errs = append(errs, fmt.Errorf("faults[%d]: %v", i, err))
				continue
			}
			w.faultIDs[i] = ""
			w.logf("+%s fault %d healed: %s %s %s", at, i, ft.Mode, ft.Name, ft.Type)
		}
	}
	for i, h := range w.Hosts {
		rn := h.Spec.Renew
		if rn == nil || h.renewed || h.Receiver == nil || t < time.Duration(*rn.At) {
			continue
		}
		if err := h.renew(lab, t, w.logf); err != nil {
			errs = append(errs, fmt.Errorf("dns.mx[%d].renew: %v", i, err))
		}
	}
	return errors.Join(errs...)
}

// renew deploys the host's renewed certificate; where the zone follows (an unstaged renewal
// with computed usage 2 or 3 records, publish "renewal"), the new records replace the
// old ones before.
func (h *Host) renew(lab Control, t time.Duration, logf func(string, ...any)) error {
	rn := h.Spec.Renew
	follow := !rn.Staged && rn.Publish != scenario.PublishNever &&
		(scenario.HasComputed(h.Spec.TLSA, 3) || scenario.HasComputed(h.Spec.TLSA, 2))
	var recs []string
	if follow {
		var err error
		if recs, err = tlsaRecords(h.Spec, h.Owner, h.next, nil, h.Receiver.CA()); err != nil {
			return err
		}
		if err := lab.ReplaceRecords(recs...); err != nil {
			return fmt.Errorf("publishing %v: %v", recs, err)
		}
	}
	now := time.Now()
	old := h.Receiver.Identity()
	h.Receiver.SetIdentity(h.next)
	h.renewed = true
	logf("+%s %s renewed its certificate (%s key, due at +%s): serial %s -> %s", scenario.FormatAge(t),
		strings.TrimSuffix(h.Name, "."), rn.Key, rn.At, old.Leaf.SerialNumber, h.next.Leaf.SerialNumber)
	if follow {
		h.mu.Lock()
		h.published = append(h.published, published{from: now, recs: recs})
		h.mu.Unlock()
		for _, r := range recs {
			logf("+%s the zone follows: %s", scenario.FormatAge(t), r)
		}
	}
	return nil
}

// Static reports whether nothing changes after time 0: no fault starts or heals, no
// certificate is renewed later; the outcome then does not depend on when a sender tries.
func (w *World) Static() bool {
	for _, h := range w.Hosts {
		if h.Spec.Renew != nil && *h.Spec.Renew.At > 0 {
			return false
		}
	}
	for _, ft := range w.Faults {
		if ft.Start != nil && *ft.Start > 0 || ft.Heal != nil {
			return false
		}
	}
	return true
}

// HealsAt is the scenario time at which the last fault in place at time 0 heals (0: none).
func (w *World) HealsAt() time.Duration {
	var last time.Duration
	for _, ft := range w.Faults {
		if ft.Active(0) && ft.Heal != nil && time.Duration(*ft.Heal) > last {
			last = time.Duration(*ft.Heal)
		}
	}
	return last
}

// RealTime says whether a sender outside the harness can play the scenario in real time,
// and why not: its point must not be the sender's own cache, its message is submitted at
// time 0, no certificate changes and no fault starts after time 0 (faults may heal).
func (w *World) RealTime() (bool, string) {
	s := w.Scenario
	switch {
	case s.Sender.Cache || s.Sender.Warmup:
		return false, "its point is the sender's DNS cache, which is the MTA's own"
	case s.Submit != nil && *s.Submit > 0:
		return false, "its message is submitted after the world changed"
	}
	for _, h := range w.Hosts {
		if h.Spec.Renew != nil && *h.Spec.Renew.At > 0 {
			return false, "a certificate changes while it runs"
		}
	}
	for _, ft := range w.Faults {
		if ft.Start != nil && *ft.Start > 0 {
			return false, "a fault starts after time 0"
		}
	}
	return true, ""
}
