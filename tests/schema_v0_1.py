"""The database schema of vidfarm 0.1 (main before migrations), frozen: the statements its
``Base.metadata.create_all`` ran, compiled by SQLAlchemy from the models of that release.
The migration tests build "today's" database from these, never from the current models."""

SQLITE = [
    'CREATE TABLE identities (\n    id INTEGER NOT NULL,\n    name VARCHAR(64) NOT NULL,\n    watchlist BOOLEAN NOT NULL,\n    created_at DATETIME NOT NULL,\n    PRIMARY KEY (id),\n    UNIQUE (name)\n)',
    'CREATE TABLE jobs (\n    id VARCHAR(32) NOT NULL,\n    status VARCHAR(16) NOT NULL,\n    source_name VARCHAR(255) NOT NULL,\n    source_key VARCHAR(512) NOT NULL,\n    error TEXT,\n    chunks_total INTEGER NOT NULL,\n    options JSON NOT NULL,\n    media JSON,\n    timing JSON NOT NULL,\n    results_version INTEGER NOT NULL,\n    gallery_fingerprint VARCHAR(64),\n    created_at DATETIME NOT NULL,\n    updated_at DATETIME NOT NULL,\n    finished_at DATETIME,\n    PRIMARY KEY (id)\n)',
    'CREATE INDEX ix_jobs_status ON jobs (status)',
    'CREATE TABLE users (\n    id INTEGER NOT NULL,\n    username VARCHAR(64) NOT NULL,\n    password_hash VARCHAR(255) NOT NULL,\n    role VARCHAR(16) NOT NULL,\n    created_at DATETIME NOT NULL,\n    PRIMARY KEY (id),\n    UNIQUE (username)\n)',
    'CREATE TABLE api_tokens (\n    id INTEGER NOT NULL,\n    user_id INTEGER NOT NULL,\n    label VARCHAR(64) NOT NULL,\n    token_sha256 VARCHAR(64) NOT NULL,\n    created_at DATETIME NOT NULL,\n    PRIMARY KEY (id),\n    FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,\n    UNIQUE (token_sha256)\n)',
    'CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id)',
    'CREATE TABLE face_embeddings (\n    id INTEGER NOT NULL,\n    identity_id INTEGER NOT NULL,\n    vector BLOB NOT NULL,\n    source VARCHAR(255) NOT NULL,\n    crop_key VARCHAR(512),\n    created_at DATETIME NOT NULL,\n    PRIMARY KEY (id),\n    FOREIGN KEY(identity_id) REFERENCES identities (id) ON DELETE CASCADE\n)',
    'CREATE INDEX ix_face_embeddings_identity_id ON face_embeddings (identity_id)',
    'CREATE TABLE segments (\n    job_id VARCHAR(32) NOT NULL,\n    "index" INTEGER NOT NULL,\n    status VARCHAR(16) NOT NULL,\n    start_frame INTEGER NOT NULL,\n    frames INTEGER NOT NULL,\n    pts JSON NOT NULL,\n    end_pts INTEGER NOT NULL,\n    error TEXT,\n    worker VARCHAR(255),\n    seconds FLOAT,\n    started_at DATETIME,\n    finished_at DATETIME,\n    attempts INTEGER NOT NULL,\n    PRIMARY KEY (job_id, "index"),\n    FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE\n)',
]

POSTGRESQL = [
    'CREATE TABLE identities (\n    id SERIAL NOT NULL,\n    name VARCHAR(64) NOT NULL,\n    watchlist BOOLEAN NOT NULL,\n    created_at TIMESTAMP WITH TIME ZONE NOT NULL,\n    PRIMARY KEY (id),\n    UNIQUE (name)\n)',
    'CREATE TABLE jobs (\n    id VARCHAR(32) NOT NULL,\n    status VARCHAR(16) NOT NULL,\n    source_name VARCHAR(255) NOT NULL,\n    source_key VARCHAR(512) NOT NULL,\n    error TEXT,\n    chunks_total INTEGER NOT NULL,\n    options JSON NOT NULL,\n    media JSON,\n    timing JSON NOT NULL,\n    results_version INTEGER NOT NULL,\n    gallery_fingerprint VARCHAR(64),\n    created_at TIMESTAMP WITH TIME ZONE NOT NULL,\n    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,\n    finished_at TIMESTAMP WITH TIME ZONE,\n    PRIMARY KEY (id)\n)',
    'CREATE INDEX ix_jobs_status ON jobs (status)',
    'CREATE TABLE users (\n    id SERIAL NOT NULL,\n    username VARCHAR(64) NOT NULL,\n    password_hash VARCHAR(255) NOT NULL,\n    role VARCHAR(16) NOT NULL,\n    created_at TIMESTAMP WITH TIME ZONE NOT NULL,\n    PRIMARY KEY (id),\n    UNIQUE (username)\n)',
    'CREATE TABLE api_tokens (\n    id SERIAL NOT NULL,\n    user_id INTEGER NOT NULL,\n    label VARCHAR(64) NOT NULL,\n    token_sha256 VARCHAR(64) NOT NULL,\n    created_at TIMESTAMP WITH TIME ZONE NOT NULL,\n    PRIMARY KEY (id),\n    FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE,\n    UNIQUE (token_sha256)\n)',
    'CREATE INDEX ix_api_tokens_user_id ON api_tokens (user_id)',
    'CREATE TABLE face_embeddings (\n    id SERIAL NOT NULL,\n    identity_id INTEGER NOT NULL,\n    vector BYTEA NOT NULL,\n    source VARCHAR(255) NOT NULL,\n    crop_key VARCHAR(512),\n    created_at TIMESTAMP WITH TIME ZONE NOT NULL,\n    PRIMARY KEY (id),\n    FOREIGN KEY(identity_id) REFERENCES identities (id) ON DELETE CASCADE\n)',
    'CREATE INDEX ix_face_embeddings_identity_id ON face_embeddings (identity_id)',
    'CREATE TABLE segments (\n    job_id VARCHAR(32) NOT NULL,\n    index INTEGER NOT NULL,\n    status VARCHAR(16) NOT NULL,\n    start_frame INTEGER NOT NULL,\n    frames INTEGER NOT NULL,\n    pts JSON NOT NULL,\n    end_pts INTEGER NOT NULL,\n    error TEXT,\n    worker VARCHAR(255),\n    seconds FLOAT,\n    started_at TIMESTAMP WITH TIME ZONE,\n    finished_at TIMESTAMP WITH TIME ZONE,\n    attempts INTEGER NOT NULL,\n    PRIMARY KEY (job_id, index),\n    FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE\n)',
]
