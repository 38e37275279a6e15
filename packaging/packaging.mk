# packaging.mk: man pages, the systemd unit, .deb and .rpm packages, and the packaging test.
# Included by the main Makefile.
#   make man               build/man/pgcheckd.8 and build/man/pgcheckd.ini.5 (keys from the binary)
#   make install-man       install them under $(DESTDIR)$(MANDIR)
#   make install-systemd   install the unit to $(DESTDIR)$(SYSTEMDUNITDIR)
#   make deb               build/packages/pgcheckd_*.deb (dpkg-buildpackage on a clean copy of the tree)
#   make rpm               build/packages/pgcheckd-*.rpm (rpmbuild --nodeps on Debian)
#   make package-check     build, lint, install, run, purge the .deb; verify the unit; check the rpm
#   make deb DIST=trixie   build/packages/trixie/pgcheckd_*.deb, built and lintian-checked inside a
#                          cached Debian 13 root (tests/packaging/dist; the host's apt is not touched)
#   make package-check-trixie  that, then install, run under trixie's systemd, purge (systemd-nspawn)
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= /lib/systemd/system
PACKAGES_DIR := build/packages

.PHONY: man install-man install-systemd deb rpm package-check package-check-trixie

man: build/man/pgcheckd.8 build/man/pgcheckd.ini.5

build/man/pgcheckd.8: man/pgcheckd.8
	@mkdir -p $(dir $@)
	cp $< $@

# The KEYS section comes from the key table, through the binary, so the page cannot drift from it.
build/man/pgcheckd.ini.5: man/pgcheckd.ini.5.in build/pgcheckd
	@mkdir -p $(dir $@)
	./build/pgcheckd --help-config=man > $@.keys
	@test -s $@.keys || { echo "pgcheckd --help-config=man printed nothing" >&2; exit 1; }
	sed -e '/^@CONFIG_KEYS@$$/{r $@.keys' -e 'd;}' $< > $@.tmp
	@! grep -n '@[A-Z_]*@' $@.tmp || { echo "$@: placeholder left" >&2; exit 1; }
	@rm -f $@.keys
	mv $@.tmp $@

install-man: man
	install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 build/man/pgcheckd.8 $(DESTDIR)$(MANDIR)/man8/pgcheckd.8
	install -m 0644 build/man/pgcheckd.ini.5 $(DESTDIR)$(MANDIR)/man5/pgcheckd.ini.5

install-systemd:
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0644 packaging/pgcheckd.service $(DESTDIR)$(SYSTEMDUNITDIR)/pgcheckd.service

# dpkg-buildpackage wants debian/ at the top of the source tree: build in a clean copy of the working
# tree (what git tracks or would track, changes included) with packaging/debian as debian/.
DIST ?=
deb:
ifneq ($(DIST),)
	bash tests/packaging/dist $(DIST) build
else
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null \
		|| { echo "make deb needs dpkg-dev and debhelper (scripts/install-deps)" >&2; exit 1; }
	rm -rf build/deb
	bash packaging/source-tree build/deb/pgcheckd-$(VERSION)
	cp -a packaging/debian build/deb/pgcheckd-$(VERSION)/debian
	cd build/deb/pgcheckd-$(VERSION) && dpkg-buildpackage -us -uc -b
	@mkdir -p $(PACKAGES_DIR)
	rm -f $(PACKAGES_DIR)/pgcheckd_*.deb $(PACKAGES_DIR)/pgcheckd-dbgsym_*.deb
	cp build/deb/pgcheckd_*.deb $(PACKAGES_DIR)/
	@ls -l $(PACKAGES_DIR)/pgcheckd_*.deb
endif

# Debian's rpm has no systemd-rpm-macros: when %systemd_post is not defined, load the same macros
# from packaging/rpm/macros.systemd (a copy of their Fedora definitions). --nodeps only skips the
# BuildRequires check, whose Fedora names Debian cannot resolve.
RPM_TOPDIR = $(CURDIR)/build/rpm
rpm:
	@command -v rpmbuild >/dev/null || { echo "make rpm needs rpmbuild (Debian package rpm)" >&2; exit 1; }
	rm -rf build/rpm
	mkdir -p build/rpm/SOURCES
	bash packaging/source-tree build/rpm/pgcheckd-$(VERSION)
	tar -C build/rpm -czf build/rpm/SOURCES/pgcheckd-$(VERSION).tar.gz pgcheckd-$(VERSION)
	rm -rf build/rpm/pgcheckd-$(VERSION)
	rpmbuild -bb --nodeps --define '_topdir $(RPM_TOPDIR)' \
		$$(rpm --eval '%{?systemd_post:have}' | grep -q have || echo --load=packaging/rpm/macros.systemd) \
		packaging/rpm/pgcheckd.spec
	@mkdir -p $(PACKAGES_DIR)
	rm -f $(PACKAGES_DIR)/pgcheckd-*.rpm
	cp build/rpm/RPMS/*/pgcheckd-$(VERSION)-*.rpm $(PACKAGES_DIR)/
	@ls -l $(PACKAGES_DIR)/*.rpm

package-check:
	bash tests/packaging/run
# about 1.5 min once the root is cached (its first build downloads trixie: about 2.5 min more)
package-check-trixie:
	bash tests/packaging/dist trixie check
