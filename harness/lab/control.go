package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/danelab/danelab/plugin/danezone/control"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

var client = &http.Client{Timeout: 5 * time.Second}

// AddFault adds a fault through the lab's control API and returns its id.
func (l *Lab) AddFault(spec fault.Spec) (string, error) {
	body, _ := json.Marshal(spec)
	var out struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	if err := l.call("POST", "/faults", body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// RemoveFault removes one fault.
func (l *Lab) RemoveFault(id string) error { return l.call("DELETE", "/faults/"+id, nil, nil) }

// Reset removes every fault and runtime record and forgets the query history.
func (l *Lab) Reset() error { return l.call("POST", "/reset", nil, nil) }

// AddRecords adds records (zone file syntax, fully qualified), signed and served at once.
func (l *Lab) AddRecords(records ...string) error {
	body, _ := json.Marshal(map[string][]string{"records": records})
	return l.call("POST", "/records", body, nil)
}

// ReplaceRecords replaces the RRset the records belong to (one owner and type, fully
// qualified) by them, signed and served at once.
func (l *Lab) ReplaceRecords(records ...string) error {
	body, _ := json.Marshal(map[string][]string{"records": records})
	return l.call("PUT", "/records", body, nil)
}

// History returns the questions the lab answered since the given time (all when zero), oldest
// first: name, type, transport, rcode and the fault applied.
func (l *Lab) History(since time.Time) ([]control.Query, error) {
	path := "/history"
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	var out []control.Query
	err := l.call("GET", path, nil, &out)
	return out, err
}

func (l *Lab) call(method, path string, body []byte, out any) error {
	req, err := http.NewRequest(method, l.ControlURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}
