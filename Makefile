# storefront: build, run, test and benchmark.
GO        ?= go
BIN       := bin
GOFLAGS   ?=
FUZZTIME  ?= 30s
DATA_DIR  ?= ./data

.PHONY: all build run test vet lint fuzz bench bench-compare faults postgres clean help

all: build

help:
	@echo "make run            build and serve on :8080 with a private PostgreSQL under $(DATA_DIR)"
	@echo "make test           vet, the whole test suite with the race detector, short fuzzing"
	@echo "make bench          system benchmark with loadgen (results under bench/results/)"
	@echo "make bench-compare  static vs database-backed routes, coalescing on and off"
	@echo "make faults         the full fault-injection suite"
	@echo "make build          bin/storefront and bin/loadgen"
	@echo "make vet            go vet (also for 386), loadgen cross-builds, gofmt; make lint is the same"
	@echo "make fuzz           each fuzz target for FUZZTIME (default 30s)"
	@echo "make postgres       install the PostgreSQL server package with apt-get if absent"
	@echo "make clean          remove bin/"

build: $(BIN)/storefront $(BIN)/loadgen

$(BIN)/storefront: FORCE
	$(GO) build $(GOFLAGS) -o $@ ./cmd/storefront

$(BIN)/loadgen: FORCE
	$(GO) build $(GOFLAGS) -o $@ ./cmd/loadgen

FORCE:

# PostgreSQL server binaries (installed with apt-get when absent).
postgres:
	@./scripts/ensure-postgres.sh

run: postgres $(BIN)/storefront
	./$(BIN)/storefront serve --data-dir $(DATA_DIR)

vet:
	$(GO) vet ./...
	GOARCH=386 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/loadgen
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/loadgen
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

lint: vet

test: postgres vet
	$(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) fuzz

# Each fuzz target runs for FUZZTIME on top of its committed seed corpus,
# which also runs in plain `go test`. FuzzHandler drives the real server with
# PostgreSQL behind it: the fuzz workers share the one cluster the
# coordinator starts (see internal/pgtest).
FUZZ_TARGETS := httpapi:FuzzAppendString httpapi:FuzzAppendUser httpapi:FuzzParseID httpapi:FuzzRoute \
	httpapi:FuzzHandler evhttp:FuzzParseRequest load:FuzzResponseReader
fuzz:
	@GO=$(GO) ./scripts/fuzz.sh $(FUZZTIME) $(FUZZ_TARGETS)

bench: postgres build
	./bench/run.sh

bench-compare: postgres build
	./bench/compare.sh

faults: postgres build
	$(GO) test -count=1 -timeout 30m -tags faults -v ./faults/...

clean:
	rm -rf $(BIN)
