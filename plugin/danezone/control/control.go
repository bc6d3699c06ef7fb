package control

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
)

// Records is what the API needs from danezone to change zone data at runtime. Every change
// is validated, signed and served at once, and survives reloads of the zone file.
type Records interface {
	// AddRecords adds records to their RRsets.
	AddRecords(rrs []dns.RR) error
	// ReplaceRecords replaces the RRset name/qtype by rrs (all of that owner and type).
	ReplaceRecords(name string, qtype uint16, rrs []dns.RR) error
	// RemoveRecords removes rrs, or the whole RRset name/qtype when rrs is empty (qtype 0:
	// every type of name).
	RemoveRecords(name string, qtype uint16, rrs []dns.RR) error
	// ResetRecords drops every runtime change, back to the zone files.
	ResetRecords()
	// Zones lists the zones served, with their serials.
	Zones() map[string]uint32
}

// Backend is what the API works on: one danezone instance's faults, records and history.
type Backend struct {
	Faults  *fault.Registry
	Records Records
	History *History
	Token   string
	// TLSA, if set, reports the TLSA records that follow certificates (GET /tlsa).
	TLSA func() any
}

// Server is the control API. Its backend can be swapped while it serves: on a CoreDNS
// reload the new instance takes over the listener of the old one (see Acquire).
type Server struct {
	backend atomic.Pointer[Backend]
	srv     *http.Server
	ln      net.Listener
}

// NewServer returns a server for b.
func NewServer(b Backend) *Server {
	s := &Server{}
	s.backend.Store(&b)
	return s
}

// SetBackend makes s serve b.
func (s *Server) SetBackend(b Backend) { s.backend.Store(&b) }

func (s *Server) b() *Backend { return s.backend.Load() }

// shared holds the servers by address, with the number of danezone instances using each, so
// that a reload (new instance started before the old one stops) keeps one listener.
var shared = struct {
	sync.Mutex
	m map[string]*sharedServer
}{m: map[string]*sharedServer{}}

type sharedServer struct {
	s    *Server
	refs int
}

// Acquire returns the server on addr serving b, starting it when no instance has it yet.
func Acquire(addr string, b Backend) (*Server, error) {
	shared.Lock()
	defer shared.Unlock()
	if e := shared.m[addr]; e != nil {
		e.refs++
		e.s.SetBackend(b)
		return e.s, nil
	}
	s := NewServer(b)
	if err := s.Start(addr); err != nil {
		return nil, err
	}
	shared.m[addr] = &sharedServer{s: s, refs: 1}
	return s, nil
}

// Release drops one user of the server on addr, stopping it after the last.
func Release(addr string) error {
	shared.Lock()
	defer shared.Unlock()
	e := shared.m[addr]
	if e == nil {
		return nil
	}
	e.refs--
	if e.refs > 0 {
		return nil
	}
	delete(shared.m, addr)
	return e.s.Stop()
}

// CheckAddress refuses a non-loopback address without a token.
func CheckAddress(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("control address %q: %v", addr, err)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("control address %s is not a loopback address: set a token (control ADDRESS TOKEN)", addr)
	}
	return nil
}

// Start listens on addr and serves in the background.
func (s *Server) Start(addr string) error {
	if err := CheckAddress(addr, s.b().Token); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return nil
}

// Addr returns the address listened on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stop shuts the server down.
func (s *Server) Stop() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /faults", s.listFaults)
	mux.HandleFunc("POST /faults", s.addFault)
	mux.HandleFunc("GET /faults/modes", s.modes)
	mux.HandleFunc("DELETE /faults/{id}", s.removeFault)
	mux.HandleFunc("DELETE /faults", s.clearFaults)
	mux.HandleFunc("POST /records", s.addRecords)
	mux.HandleFunc("PUT /records", s.replaceRecords)
	mux.HandleFunc("DELETE /records", s.removeRecords)
	mux.HandleFunc("GET /history", s.history)
	mux.HandleFunc("DELETE /history", s.clearHistory)
	mux.HandleFunc("POST /reset", s.reset)
	mux.HandleFunc("GET /tlsa", func(w http.ResponseWriter, r *http.Request) {
		if f := s.b().TLSA; f != nil {
			writeJSON(w, http.StatusOK, f())
			return
		}
		writeJSON(w, http.StatusOK, []any{})
	})
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := s.b().Token; token != "" {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// decode reads a JSON body strictly: unknown fields are errors, so typos are not ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("empty body: send a JSON object")
		}
		return fmt.Errorf("bad JSON: %v", err)
	}
	return nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "zones": s.b().Records.Zones(), "faults": len(s.b().Faults.List())})
}

func (s *Server) listFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.b().Faults.List())
}

func (s *Server) modes(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for _, m := range fault.Modes {
		out[string(m.Mode)] = m.Does
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) addFault(w http.ResponseWriter, r *http.Request) {
	var spec fault.Spec
	if err := decode(r, &spec); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := s.b().Faults.Add(spec)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (s *Server) removeFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.b().Faults.Remove(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no fault with id %q", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) clearFaults(w http.ResponseWriter, r *http.Request) {
	s.b().Faults.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// recordsBody is the body of the /records endpoints.
type recordsBody struct {
	// Records in zone file syntax, fully qualified: "_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 ...".
	Records []string `json:"records"`
	Name    string   `json:"name"` // for PUT and DELETE without records
	Type    string   `json:"type"`
}

func (b *recordsBody) parse() ([]dns.RR, error) {
	var rrs []dns.RR
	for i, txt := range b.Records {
		rr, err := dns.NewRR(txt)
		if err != nil {
			return nil, fmt.Errorf("records[%d]: %v", i, err)
		}
		if rr == nil {
			return nil, fmt.Errorf("records[%d]: empty", i)
		}
		if strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String())) == "" {
			return nil, fmt.Errorf("records[%d]: %q has no data", i, txt)
		}
		if !dns.IsFqdn(rr.Header().Name) {
			return nil, fmt.Errorf("records[%d]: owner must be fully qualified", i)
		}
		rrs = append(rrs, rr)
	}
	return rrs, nil
}

func (b *recordsBody) nameType(rrs []dns.RR, typeRequired bool) (string, uint16, error) {
	name, t := b.Name, uint16(0)
	if b.Type != "" {
		var ok bool
		if t, ok = dns.StringToType[strings.ToUpper(b.Type)]; !ok {
			return "", 0, fmt.Errorf("unknown type %q", b.Type)
		}
	}
	if name == "" && len(rrs) > 0 {
		name = rrs[0].Header().Name
	}
	if t == 0 && len(rrs) > 0 {
		t = rrs[0].Header().Rrtype
	}
	if name == "" {
		return "", 0, fmt.Errorf("name is required (or records)")
	}
	if typeRequired && t == 0 {
		return "", 0, fmt.Errorf("type is required (or records)")
	}
	for i, rr := range rrs {
		if !strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) || rr.Header().Rrtype != t {
			return "", 0, fmt.Errorf("records[%d] is not %s %s", i, name, dns.TypeToString[t])
		}
	}
	return dns.Fqdn(name), t, nil
}

func (s *Server) addRecords(w http.ResponseWriter, r *http.Request) {
	var b recordsBody
	err := decode(r, &b)
	var rrs []dns.RR
	if err == nil {
		rrs, err = b.parse()
	}
	if err == nil && len(rrs) == 0 {
		err = fmt.Errorf("records is required")
	}
	if err == nil {
		err = s.b().Records.AddRecords(rrs)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"added": len(rrs), "zones": s.b().Records.Zones()})
}

func (s *Server) replaceRecords(w http.ResponseWriter, r *http.Request) {
	s.changeRecords(w, r, true, func(name string, t uint16, rrs []dns.RR) (map[string]any, error) {
		return map[string]any{"replaced": name + " " + dns.TypeToString[t], "records": len(rrs)}, s.b().Records.ReplaceRecords(name, t, rrs)
	})
}

func (s *Server) removeRecords(w http.ResponseWriter, r *http.Request) {
	s.changeRecords(w, r, false, func(name string, t uint16, rrs []dns.RR) (map[string]any, error) {
		return map[string]any{"removed": name}, s.b().Records.RemoveRecords(name, t, rrs)
	})
}

// changeRecords reads a body naming one RRset (by records, or name and type) and applies do.
func (s *Server) changeRecords(w http.ResponseWriter, r *http.Request, typeRequired bool, do func(string, uint16, []dns.RR) (map[string]any, error)) {
	var b recordsBody
	err := decode(r, &b)
	var rrs []dns.RR
	var name string
	var t uint16
	if err == nil {
		rrs, err = b.parse()
	}
	if err == nil {
		name, t, err = b.nameType(rrs, typeRequired)
	}
	var out map[string]any
	if err == nil {
		out, err = do(name, t, rrs)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out["zones"] = s.b().Records.Zones()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var t uint16
	if ts := q.Get("type"); ts != "" {
		var ok bool
		if t, ok = dns.StringToType[strings.ToUpper(ts)]; !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown type %q", ts))
			return
		}
	}
	var since time.Time
	if ss := q.Get("since"); ss != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, ss); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since: %v (use RFC 3339, e.g. 2026-11-22T10:00:00Z)", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, s.b().History.Find(q.Get("name"), t, since))
}

func (s *Server) clearHistory(w http.ResponseWriter, r *http.Request) {
	s.b().History.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// reset removes every fault and runtime record change and forgets the history.
func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	s.b().Faults.Reset()
	s.b().Records.ResetRecords()
	s.b().History.Reset()
	writeJSON(w, http.StatusOK, map[string]any{"status": "reset", "zones": s.b().Records.Zones()})
}
