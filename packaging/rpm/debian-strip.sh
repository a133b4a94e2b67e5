#!/bin/sh
# debian-strip.sh - the strip that packaging/build-rpm.sh gives brp-strip
# when the .rpm is built with Debian's rpm. There, no -debuginfo split runs
# (that is what strips binaries on Fedora and RHEL) and brp-strip calls
# `strip -g`, which keeps the symbol table; strip what is not needed instead.
[ "$1" = "-g" ] && shift
exec strip --strip-unneeded "$@"
