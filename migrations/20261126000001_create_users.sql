-- Registered users. The primary key is the request id, not an auto-increment: redelivering the
-- same RegistrationRequested event any number of times hits the same key and adds nothing.
-- Portable between MySQL 8 and MariaDB 10.11: explicit utf8mb4_unicode_ci (MySQL's default
-- utf8mb4_0900_ai_ci does not exist on MariaDB), DATETIME(6) stored as UTC.
CREATE TABLE IF NOT EXISTS users (
    request_id    BINARY(16)   NOT NULL,
    email         VARCHAR(254) NOT NULL,
    name          VARCHAR(100) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    requested_at  DATETIME(6)  NOT NULL,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (request_id),
    UNIQUE KEY uq_users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
