#!/usr/bin/env bash
# Regenerates rpmdb.sqlite beside this script: a real rpm (Debian's `rpm` package, 4.18) builds three small noarch
# packages from two spec files and records them, database only, in a fresh SQLite rpmdb. The scanner's rpm tests read
# the result; it is checked in so that the tests need no rpm tooling.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/berth-tool.spec" <<'SPEC'
Name: berth-tool
Epoch: 2
Version: 1.2.3
Release: 4.el9
Summary: Scanner fixture with an epoch and a subpackage
License: Apache-2.0
BuildArch: noarch
%description
Fixture.
%package libs
Summary: The fixture's library subpackage
%description libs
Fixture library.
%files
%files libs
SPEC
cat >"$work/berth-plain.spec" <<'SPEC'
Name: berth-plain
Version: 0.9
Release: 1
Summary: Scanner fixture without an epoch
License: Apache-2.0
BuildArch: noarch
%description
Fixture.
%files
SPEC

for spec in "$work"/*.spec; do
    rpmbuild --quiet --define "_topdir $work/build" -bb "$spec"
done
mkdir -p "$work/db"
rpm --define '_db_backend sqlite' --dbpath "$work/db" --initdb
rpm --define '_db_backend sqlite' --dbpath "$work/db" -i --justdb --nodeps --ignorearch --ignoreos "$work"/build/RPMS/noarch/*.rpm
rpm --define '_db_backend sqlite' --dbpath "$work/db" -qa --qf '%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{SOURCERPM}\n' | sort
# A single file: fold the write-ahead log into the database.
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$work/db/rpmdb.sqlite"
cp "$work/db/rpmdb.sqlite" "$here/rpmdb.sqlite"
