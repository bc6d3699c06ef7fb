// Package integration holds end-to-end tests of danelab's CoreDNS build (cmd/coredns) with the
// danezone plugin. The tests build the server once per test binary, run it on free loopback
// ports with temporary zone and key directories, and judge its answers with real validators:
//
//   - delv (bind9-dnsutils) with a static trust anchor read from the generated key files,
//   - a private Unbound instance with the zone as a stub and the DS from dsset-<zone>.,
//   - direct queries with github.com/miekg/dns, whose signatures the tests verify themselves.
//
// Expected answers are computed from the zone files (see zonemodel_test.go) and the DNS rules,
// never from the server's output. When a peer program is missing the tests that need it skip
// and say which one; CI (.ci/run) installs them all.
//
// Environment:
//
//	DANELAB_COREDNS      use this server binary instead of building ./cmd/coredns
//	DANELAB_IT_SERVER_RACE  1/0: build the server with/without -race (default: like the tests;
//	                     under -race a data race logged by the server fails the run)
//	DANELAB_IT_SEED      seed for the random-name test (default: time based, logged)
//	DANELAB_IT_KEEP      keep temporary directories (logs, configs) after the run
package integration
