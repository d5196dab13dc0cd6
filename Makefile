# Two commands on a fresh Debian machine (as root): `make demo`, `make test`.
.PHONY: demo test build bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

build:
	cargo build --release --workspace

bench: build
	bench/lifecycle.sh
