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

clean:
	rm -rf $(BIN)
