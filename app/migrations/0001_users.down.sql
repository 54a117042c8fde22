-- lint:allow-destructive
DROP TABLE users;
