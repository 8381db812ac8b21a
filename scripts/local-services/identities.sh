# identities.sh - who may connect to what: the database accounts on the plain
# and the secured MariaDB (the development user, the migrator, one runtime
# identity per service; issue 25) and their passwords for the secured one.

# The per-service database identities (issue 25), on the plain and the secured
# MariaDB: a migrator that owns the schema of $DB_NAME (and may grant on it), and
# one runtime account per service with no privilege yet: the migration step
# (DATABASE_MIGRATION_URL) grants each exactly its tables once they exist
# (table grants need the tables). $1 non-empty: passwords and REQUIRE SSL (the
# secured server); empty: password-less, for the loopback development server.
readonly DB_MIGRATOR_USER=registrations_migrator
readonly DB_RUNTIME_USERS="gateway registration_service dlq_worker"
identities_sql() {
  local secure=$1 user auth
  for user in "$DB_MIGRATOR_USER" $DB_RUNTIME_USERS; do
    auth=""
    if [[ -n $secure ]]; then
      auth="IDENTIFIED BY '$(secure_db_password "$user")' REQUIRE SSL"
    fi
    echo "CREATE USER IF NOT EXISTS '$user'@'%' $auth;"
    if [[ -n $auth ]]; then echo "ALTER USER '$user'@'%' $auth;"; fi
  done
  echo "GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_MIGRATOR_USER'@'%' WITH GRANT OPTION;"
}

# The development user: no password, from anywhere (loopback-only server),
# all privileges because tests create throwaway databases, WITH GRANT OPTION
# because tests give their throwaway databases their own per-service
# identities. No service uses it in the secured run. Idempotent.
provision_db() {
  db_sql --batch <<EOF || die "$EX_DB" "creating database/user '$DB_USER' failed"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
DROP USER IF EXISTS ''@'localhost';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost';
CREATE USER IF NOT EXISTS '$DB_USER'@'%';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%' WITH GRANT OPTION;
$(identities_sql "")
FLUSH PRIVILEGES;
EOF
}

# The secured server's accounts. REQUIRE SSL on top of require_secure_transport:
# the account itself refuses plaintext. Idempotent.
secure_provision_db() {
  secure_secrets
  db_sql --batch <<EOF_SQL || die "$EX_DB" "creating the TLS user failed"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$SECURE_DB_USER'@'%' IDENTIFIED BY '$SECURE_DB_PASSWORD' REQUIRE SSL;
ALTER USER '$SECURE_DB_USER'@'%' IDENTIFIED BY '$SECURE_DB_PASSWORD' REQUIRE SSL;
GRANT ALL PRIVILEGES ON *.* TO '$SECURE_DB_USER'@'%' WITH GRANT OPTION;
$(identities_sql secure)
FLUSH PRIVILEGES;
EOF_SQL
}

# The password of a per-service database identity (identities_sql).
secure_db_password() {
  local var
  var="SECURE_DB_PASSWORD_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')"
  printf '%s' "${!var:?$var missing from $SECURE_SECRETS}"
}
