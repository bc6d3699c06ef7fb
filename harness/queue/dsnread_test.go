package queue

import (
	"testing"
	"time"
)

// TestReadDSN reads back what BuildDSN writes, and the first fields of a report that is not
// multipart (a folded Diagnostic-Code unfolded).
func TestReadDSN(t *testing.T) {
	b, err := BuildDSN(DSNInfo{ReportingMTA: "mta.sender.test", Date: time.Now(), Expired: true,
		Message: &Message{From: "alice@sender.test", To: []string{"Bob@Example.Test"}, Domain: "example.test",
			Data: []byte("Subject: x\r\nStatus: 2.0.0\r\n\r\nStatus: 2.0.0\r\n")},
		Final: Status{Code: "5.7.323", Diagnostic: "tlsa-invalid"}})
	if err != nil {
		t.Fatal(err)
	}
	got := ReadDSN(b)
	if got.Recipient != "bob@example.test" || got.Status != "5.7.323" || got.Action != "failed" {
		t.Errorf("ReadDSN(BuildDSN) = %+v", got)
	}
	plain := ReadDSN([]byte("Subject: x\r\n\r\nFinal-Recipient: rfc822; <c@d.test>\r\nAction: Delayed\r\nStatus: 4.4.1 (x)\r\n" +
		"Diagnostic-Code: smtp; 450\r\n  try later\r\nStatus: 5.0.0\r\n"))
	want := DSNFields{Recipient: "c@d.test", Status: "4.4.1", Action: "delayed", Diagnostic: "smtp; 450 try later"}
	if plain != want {
		t.Errorf("plain report: %+v, want %+v", plain, want)
	}
	if got := ReadDSN([]byte("Status:\r\nAction: failed\r\nStatus: 4.4.1\r\n")); got.Status != "4.4.1" || got.Action != "failed" {
		t.Errorf("an empty Status: then a good one: %+v", got)
	}
}

// FuzzReadDSN: a DSN comes from the MTA under test in fixture mode, so any bytes must read
// without a panic.
func FuzzReadDSN(f *testing.F) {
	f.Add([]byte("Status:\r\n"))
	f.Add([]byte("Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.7.323\r\nAction: failed\r\n--b--\r\n"))
	f.Add([]byte("Final-Recipient: rfc822\r\nDiagnostic-Code:\r\n \r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { ReadDSN(b) })
}
