#!/usr/bin/env bash
# Entry point of the locally built MariaDB image: on an empty data dir, initialise it and create
# the accounts the official image's MARIADB_* variables ask for (on a server that listens on no
# port), then run mariadbd with the container's arguments (e.g. --port=N).
set -euo pipefail
data=/var/lib/mysql
# The image runs as the OS user mysql, so the socket-authenticated admin is mysql@localhost
# (root@localhost by socket would need the OS user root).
sql() { mariadb --no-defaults --socket=/run/mysqld/init.sock -umysql "$@"; }
if [[ ! -d $data/mysql ]]; then
  mariadb-install-db --no-defaults --datadir="$data" --auth-root-authentication-method=socket \
    --auth-root-socket-user=mysql --skip-test-db >/dev/null
  mariadbd --no-defaults --datadir="$data" --skip-networking --socket=/run/mysqld/init.sock &
  init_pid=$!
  for _ in $(seq 1 60); do sql -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
  root_password=${MARIADB_ROOT_PASSWORD:-}
  if [[ ${MARIADB_RANDOM_ROOT_PASSWORD:-} == yes ]]; then
    root_password=$(head -c 18 /dev/urandom | base64)
  fi
  if [[ -z $root_password && -z ${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-} && -z ${MARIADB_RANDOM_ROOT_PASSWORD:-} ]]; then
    echo "set MARIADB_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD=yes or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1" >&2
    exit 1
  fi
  # Values go in as SQL string literals: a quote in them is doubled.
  q() { printf '%s' "${1//\'/\'\'}"; }
  {
    # root@localhost too: a TCP client on 127.0.0.1 is 'localhost' and would meet that
    # socket-only account before root@'%'.
    echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$(q "$root_password")') OR unix_socket;"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(q "$root_password")';"
    echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [[ -n ${MARIADB_DATABASE:-} ]]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\`;"
    fi
    if [[ -n ${MARIADB_USER:-} ]]; then
      echo "CREATE USER '$(q "$MARIADB_USER")'@'%' IDENTIFIED BY '$(q "${MARIADB_PASSWORD:-}")';"
      [[ -n ${MARIADB_DATABASE:-} ]] && echo "GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '$(q "$MARIADB_USER")'@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } | sql
  kill "$init_pid"
  wait "$init_pid" || true
fi
exec mariadbd --no-defaults --datadir="$data" --socket=/run/mysqld/mysqld.sock "$@"
