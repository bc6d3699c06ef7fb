GO      ?= go
BIN     := bin

.PHONY: build run lab deps test bench clean

# Debian packages of the peers the tests use as judges (delv, unbound, ldns) and of the benchmark.
PEERS := curl unbound bind9-dnsutils bind9-utils ldnsutils openssl postfix hash-slinger pebble lego dnsperf knot knot-dnsutils nsd bind9 chromium

build:
	$(GO) build -o $(BIN)/coredns ./cmd/coredns
	$(GO) build -o $(BIN)/danelab ./cmd/danelab

run: build
	mkdir -p .state/keys
	$(BIN)/coredns -conf Corefile

# make lab: the main job, every DANE scenario end to end (danelab run; ARGS for its flags).
lab: build
	$(BIN)/danelab run $(ARGS)

deps:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(PEERS)
	.ci/install-exim
	.ci/install-gomtas

test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# make bench: dnsperf -D throughput of danezone vs stock CoreDNS file+dnssec, unsigned file,
# and Knot DNS mod-onlinesign (see bench/run.sh; env BENCH_SECONDS, BENCH_OUT, ...).
bench: build
	GO=$(GO) COREDNS=$(CURDIR)/$(BIN)/coredns ./bench/run.sh

clean:
	rm -rf $(BIN)
