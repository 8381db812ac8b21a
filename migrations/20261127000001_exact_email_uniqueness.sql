-- "Email already registered" only when it is: the unique key on users.email compares bytes.
-- The services store canonical addresses only (registration_events::email: NFC, lower-cased
-- local part, ASCII domain), so byte equality is exactly the system's address equality.
-- utf8mb4_unicode_ci, used before, also folded accents and ß (ü = u, ß = ss) and refused
-- different people's addresses as taken. utf8mb4_bin exists on MySQL 8 and MariaDB 10.11;
-- its PAD SPACE cannot matter because canonical addresses contain no spaces. (sqlx reads a
-- binary-collated column as bytes: decode users.email as Vec<u8>.)
ALTER TABLE users
    MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
