# The two commands of the README:
#   make run    build sand, sand-lab and the appliance image, bring up the two-box lab
#   make test   run every test tier
.PHONY: run test build down

build:
	tests/setup.sh
	PATH=/usr/local/go/bin:$$PATH go build -o bin/sand ./sand
	PATH=/usr/local/go/bin:$$PATH go build -o bin/sand-lab ./tests/lab/cmd/sand-lab

run: build
	bin/sand-lab up --pair drbd

down:
	bin/sand-lab down

test:
	tests/run.sh
