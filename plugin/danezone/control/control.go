package control

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	// Keys, if set, report each zone's keys and their schedules (GET /keys); Roll asks for a
	// roll of a zone's role now (POST /keys/roll).
	Keys func() any
	Roll func(zone, role string) error
}

// Server is the control API. Its backend can be swapped while it serves: on a CoreDNS
// reload the new instance takes over the listener of the old one (see Acquire).
type Server struct {
	backend atomic.Pointer[Backend]
	srv     *http.Server
	ln      *limitListener
	limits  limits
}

// NewServer returns a server for b.
func NewServer(b Backend) *Server {
	s := &Server{limits: defaultLimits}
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
	l := s.limits
	s.ln = newLimitListener(ln, l.maxConns)
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: l.readHeaderTimeout, ReadTimeout: l.readTimeout,
		WriteTimeout: l.writeTimeout, IdleTimeout: l.idleTimeout, MaxHeaderBytes: l.maxHeaderBytes}
	go s.srv.Serve(s.ln)
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
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		if f := s.b().Keys; f != nil {
			writeJSON(w, http.StatusOK, f())
			return
		}
		writeJSON(w, http.StatusOK, []any{})
	})
	mux.HandleFunc("POST /keys/roll", s.roll)
	mux.HandleFunc("GET /tlsa", func(w http.ResponseWriter, r *http.Request) {
		if f := s.b().TLSA; f != nil {
			writeJSON(w, http.StatusOK, f())
			return
		}
		writeJSON(w, http.StatusOK, []any{})
	})
	return s.auth(mux)
}

// auth lets a request through only with the token, when there is one. A refused client's
// connection is closed, so that it holds no connection slot (limits.maxConns) once answered.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := s.b().Token; token != "" && !bearerMatches(r.Header.Get("Authorization"), token) {
			// RFC 9110 §15.5.2: a 401 carries a challenge; RFC 6750 §3 names the scheme.
			w.Header().Set("WWW-Authenticate", `Bearer realm="danezone"`)
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerMatches reports whether the Authorization header h carries token. RFC 6750 §2.1:
// credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1). The
// digests are compared so that the time taken says nothing of the token, not even its length.
func bearerMatches(h, token string) bool {
	scheme, got, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got = strings.TrimLeft(got, " ")
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return got != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
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

// errTooLarge refuses a body over maxBody.
var errTooLarge = fmt.Errorf("body too large: at most %d bytes", maxBody)

// decode reads a JSON body strictly: one object and nothing after it but white space, no
// unknown fields (so typos are not ignored), at most maxBody bytes. It returns the body, for
// the checks that need to know which fields were sent. Errors are for the client: write them
// with refuse.
func decode(w http.ResponseWriter, r *http.Request, v any) ([]byte, error) {
	if r.ContentLength > maxBody {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		return nil, fmt.Errorf("reading the body: %v", err)
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 {
		return nil, fmt.Errorf("empty body: send a JSON object")
	} else if t[0] != '{' {
		return nil, fmt.Errorf("bad JSON: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("bad JSON: data after the object, at byte %d", dec.InputOffset())
	}
	return body, nil
}

// refuse answers err: 413 for a body too large, 400 for anything else.
func refuse(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
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
	body, err := decode(w, r, &spec)
	if err == nil {
		err = checkLimits(body, spec)
	}
	if err != nil {
		refuse(w, err)
		return
	}
	f, err := s.b().Faults.Add(spec)
	if errors.Is(err, fault.ErrTooMany) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

// roll asks for a key roll: {"zone": "example.test.", "role": "csk"|"ksk"|"zsk"}. The roll
// starts at the next poll; GET /keys shows it.
func (s *Server) roll(w http.ResponseWriter, r *http.Request) {
	var req struct{ Zone, Role string }
	if _, err := decode(w, r, &req); err != nil {
		refuse(w, err)
		return
	}
	f := s.b().Roll
	if f == nil {
		writeError(w, http.StatusNotFound, "key rolls are not available here")
		return
	}
	if req.Zone == "" || req.Role == "" {
		writeError(w, http.StatusBadRequest, `want {"zone": ZONE, "role": "csk", "ksk" or "zsk"}`)
		return
	}
	if err := f(req.Zone, req.Role); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"zone": req.Zone, "role": req.Role, "status": "the roll starts at the next poll"})
}

// checkLimits refuses a limit sent with a value that is no limit. In a Spec, share 0, count 0
// and for 0 mean "no limit", the same as a field left out, so "share":0 would apply the fault
// to every query. Sent, share must be in (0, 1], count at least 1 and for positive; null is
// the same as left out.
func checkLimits(body []byte, spec fault.Spec) error {
	var sent struct {
		Share, Count, For json.RawMessage
	}
	if err := json.Unmarshal(body, &sent); err != nil { // decoded as spec already
		return fmt.Errorf("bad JSON: %v", err)
	}
	given := func(raw json.RawMessage) bool { return raw != nil && string(raw) != "null" }
	switch {
	case given(sent.Share) && !(spec.Share > 0 && spec.Share <= 1):
		return fmt.Errorf("share %s is not in (0, 1]: leave share out to apply the fault to every query", sent.Share)
	case given(sent.Count) && spec.Count == 0:
		return fmt.Errorf("count 0 is no limit: give at least 1, or leave count out for every query")
	case given(sent.For) && spec.For == 0:
		return fmt.Errorf("for %s is an empty window: give a positive duration, or leave for out for no end", sent.For)
	}
	return nil
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
	if _, ok := dns.IsDomainName(name); !ok {
		return "", 0, fmt.Errorf("invalid name %q", name)
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
	_, err := decode(w, r, &b)
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
		refuse(w, err)
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
	_, err := decode(w, r, &b)
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
		refuse(w, err)
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
