// Command tlsrptday moves the TLS results a stopped mox recorded for one recipient domain to
// the previous UTC day, in its tlsrptresult.db. mox sends TLS-RPT reports (RFC 8460) once a
// day, for the day before, and at start-up for any day before today (tlsrptsend/send.go), one
// policy domain at a time, minutes apart; started again after this, it reports that domain
// at once. It is how integration/mox_fixture_test.go gets a report from a real reporter
// within a test's minutes: mox's own code builds and sends it, only the day is changed.
//
//	tlsrptday -db DATADIR/tlsrptresult.db -domain RECIPIENT-DOMAIN
//
// It prints how many results it moved; it fails when there are none.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/mjl-/bstore"
	"github.com/mjl-/mox/tlsrptdb"
)

func main() {
	db := flag.String("db", "", "mox's tlsrptresult.db (in its data directory; mox must be stopped)")
	domain := flag.String("domain", "", "the recipient domain whose results move to yesterday")
	flag.Parse()
	if *db == "" || *domain == "" || flag.NArg() != 0 {
		flag.Usage()
		log.Fatal("tlsrptday: -db and -domain are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := bstore.Open(ctx, *db, &bstore.Options{Timeout: 5 * time.Second, MustExist: true}, tlsrptdb.ResultDBTypes...)
	if err != nil {
		log.Fatalf("tlsrptday: %s: %v", *db, err)
	}
	defer d.Close()
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format("20060102")
	n, err := bstore.QueryDB[tlsrptdb.TLSResult](ctx, d).FilterEqual("RecipientDomain", *domain).UpdateField("DayUTC", yesterday)
	if err != nil {
		log.Fatalf("tlsrptday: %s: %v", *db, err)
	}
	if n == 0 {
		log.Fatalf("tlsrptday: %s: no TLS results for recipient domain %s", *db, *domain)
	}
	fmt.Printf("tlsrptday: %d result(s) of %s moved to %s\n", n, *domain, yesterday)
}
