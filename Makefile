GO      ?= go
BIN     := bin

.PHONY: build run test race vet fuzz bench clean

build:
	$(GO) build -o $(BIN)/coredns ./cmd/coredns
	$(GO) build -o $(BIN)/danelab ./cmd/danelab

run: build
	mkdir -p .state/keys
	$(BIN)/coredns -conf Corefile

test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# make bench: dnsperf -D throughput of danezone vs stock CoreDNS file+dnssec, unsigned file,
# and Knot DNS mod-onlinesign (see bench/run.sh; env BENCH_SECONDS, BENCH_OUT, ...).
bench: build
	GO=$(GO) COREDNS=$(CURDIR)/$(BIN)/coredns ./bench/run.sh

clean:
	rm -rf $(BIN)
