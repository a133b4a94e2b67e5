# packaging/: .deb and .rpm, systemd units, default configs, man pages
# (docs/PACKAGING.md). Included from the top Makefile.
#
#   make deb            build/pkg/deb/strata_<VERSION>-1_<arch>.deb (dpkg-buildpackage -b)
#   make rpm            build/pkg/rpm/RPMS/<arch>/strata-<VERSION>-1.<arch>.rpm (rpmbuild -bb)
#   make package-test   both, then tests/packaging/run.sh (root: installs the .deb for real)
#   make man            the man pages, from packaging/man/*.scd (scdoc)
#   make install-dist   everything a package ships, into $(DESTDIR); debian/rules
#                       and strata.spec call it with their distribution's paths
#
# Binaries shipped in the packages. Adding one is one word here; by
# convention it then also needs packaging/man/<bin>.<section>.scd and, for a
# daemon, packaging/systemd/<bin>.service and packaging/conf/<name>.conf
# (<bin> without "strata-"), all picked up by wildcard.
PKG_BINS := strata-proxy strata-node strata-admin

PKG_OUT := build/pkg
PKG_DOCS := README.md docs/COMPATIBILITY.md
PKG_UNITS := $(wildcard packaging/systemd/*.service)
PKG_CONFS := $(wildcard packaging/conf/*.conf)
PKG_MANS := $(patsubst packaging/man/%.scd,$(B)/man/%,$(wildcard packaging/man/*.scd))
PKG_SYSUSERS := packaging/sysusers/strata.conf

# Install layout for packages (PREFIX=/usr). The units name /usr/bin and
# /etc/strata literally, so install-dist is for PREFIX=/usr only.
SYSCONFDIR ?= /etc
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/strata
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

# Extra rpmbuild arguments, e.g. RPMBUILD_FLAGS='--define "dist .el9"'.
RPMBUILD_FLAGS ?=

.PHONY: deb rpm package-test man install-dist deps-package pkg-info

man: $(PKG_MANS)

$(B)/man/%: packaging/man/%.scd
	@mkdir -p $(@D)
	@$(if $(Q),echo "  SCDOC   $@")
	$(Q)scdoc < $< > $@.tmp && mv $@.tmp $@

install-dist: all man
	@for b in $(PKG_BINS); do \
	  case " $(notdir $(BINS)) " in *" $$b "*) ;; \
	  *) echo "packaging: PKG_BINS names $$b, which no module.mk builds" >&2; exit 1;; esac; \
	  ls packaging/man/$$b.*.scd >/dev/null 2>&1 || \
	    { echo "packaging: $$b has no man page packaging/man/$$b.<section>.scd" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/strata $(DESTDIR)$(DOCDIR)
	install -m 0755 $(addprefix $(B)/bin/,$(PKG_BINS)) $(DESTDIR)$(PREFIX)/bin/
	$(foreach m,$(PKG_MANS),install -D -m 0644 $(m) \
	  $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)) &&) true
	$(if $(PKG_UNITS),install -m 0644 $(PKG_UNITS) $(DESTDIR)$(UNITDIR)/)
	$(if $(PKG_CONFS),install -m 0644 $(PKG_CONFS) $(DESTDIR)$(SYSCONFDIR)/strata/)
	install -m 0644 $(PKG_SYSUSERS) $(DESTDIR)$(SYSUSERSDIR)/strata.conf
	install -m 0644 $(PKG_DOCS) $(DESTDIR)$(DOCDIR)/

# What tests/packaging/run.sh expands its expected file lists with.
pkg-info:
	@echo "bin=$(PKG_BINS)"
	@echo "unit=$(notdir $(PKG_UNITS))"
	@echo "conf=$(notdir $(PKG_CONFS))"
	@echo "man=$(foreach m,$(PKG_MANS),man$(subst .,,$(suffix $(m)))/$(notdir $(m)))"
	@echo "doc=$(notdir $(PKG_DOCS))"

deb:
	packaging/build-deb.sh $(VERSION) $(PKG_OUT)/deb

rpm:
	packaging/build-rpm.sh $(VERSION) $(PKG_OUT)/rpm "$(notdir $(PKG_UNITS))" $(RPMBUILD_FLAGS)

deps-package:
	@tools/install-deps.sh package

# The install/upgrade/purge test needs root; it builds N+1 itself.
package-test: deps-package
	@$(MAKE) --no-print-directory deb rpm
	tests/packaging/run.sh $(PKG_OUT)
