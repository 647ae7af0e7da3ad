-- mpesa V1: Daraja settings (the secrets live in the host's encrypted
-- store), the OAuth token cache, transactions, B2C batches, asynchronous
-- queries (balance, transaction status) and idempotency keys.
-- Times are RFC 3339 UTC text; *_ms columns are milliseconds since the epoch.

CREATE TABLE mpesa_settings (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    environment        TEXT NOT NULL CHECK (environment IN ('sandbox', 'production', 'custom')),
    -- Only for environment 'custom'.
    base_url           TEXT,
    shortcode          TEXT NOT NULL,
    initiator_name     TEXT NOT NULL,
    -- The certificate target the stored SecurityCredential was made for.
    credential_target  TEXT,
    c2b_response_type  TEXT,
    c2b_registered_at  TEXT,
    updated_at         TEXT NOT NULL,
    updated_by         TEXT
);

-- One cached OAuth token per Daraja server.
CREATE TABLE mpesa_tokens (
    base_url       TEXT PRIMARY KEY,
    access_token   TEXT NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    fetched_at     TEXT NOT NULL
);

CREATE TABLE mpesa_transactions (
    id                          TEXT PRIMARY KEY,
    kind                        TEXT NOT NULL CHECK (kind IN ('stk', 'b2c', 'reversal', 'c2b')),
    status                      TEXT NOT NULL
        CHECK (status IN ('pending', 'completed', 'failed', 'cancelled', 'timeout', 'reversed')),
    store_id                    TEXT,
    phone_number                TEXT,
    -- Whole Kenyan shillings.
    amount                      INTEGER NOT NULL CHECK (amount >= 0),
    account_reference           TEXT,
    description                 TEXT,
    merchant_request_id         TEXT,
    checkout_request_id         TEXT,
    originator_conversation_id  TEXT,
    conversation_id             TEXT,
    batch_id                    TEXT,
    batch_seq                   INTEGER,
    -- For a reversal: the payment it reverses.
    original_transaction_id     TEXT REFERENCES mpesa_transactions(id),
    command_id                  TEXT,
    remarks                     TEXT,
    -- M-Pesa receipt (MpesaReceiptNumber, TransactionID, TransID).
    receipt                     TEXT,
    result_code                 TEXT,
    result_desc                 TEXT,
    note                        TEXT,
    raw_callback                TEXT,
    created_by                  TEXT,
    created_at                  TEXT NOT NULL,
    created_ms                  INTEGER NOT NULL,
    updated_at                  TEXT NOT NULL,
    completed_at                TEXT
);

CREATE INDEX mpesa_transactions_by_checkout ON mpesa_transactions(checkout_request_id)
    WHERE checkout_request_id IS NOT NULL;
CREATE INDEX mpesa_transactions_by_originator ON mpesa_transactions(originator_conversation_id)
    WHERE originator_conversation_id IS NOT NULL;
CREATE INDEX mpesa_transactions_by_conversation ON mpesa_transactions(conversation_id)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX mpesa_transactions_by_receipt ON mpesa_transactions(receipt) WHERE receipt IS NOT NULL;
-- A C2B payment is recorded once per M-Pesa TransID.
CREATE UNIQUE INDEX mpesa_transactions_c2b_receipt ON mpesa_transactions(receipt) WHERE kind = 'c2b';
CREATE INDEX mpesa_transactions_by_status ON mpesa_transactions(status, created_ms);
CREATE INDEX mpesa_transactions_by_created ON mpesa_transactions(created_ms, id);
CREATE INDEX mpesa_transactions_by_store ON mpesa_transactions(store_id, created_ms);
CREATE INDEX mpesa_transactions_by_phone ON mpesa_transactions(phone_number, created_ms);
CREATE INDEX mpesa_transactions_by_batch ON mpesa_transactions(batch_id, batch_seq) WHERE batch_id IS NOT NULL;
CREATE INDEX mpesa_transactions_by_original ON mpesa_transactions(original_transaction_id)
    WHERE original_transaction_id IS NOT NULL;

CREATE TABLE mpesa_b2c_batches (
    id            TEXT PRIMARY KEY,
    command_id    TEXT NOT NULL CHECK (command_id IN ('SalaryPayment', 'BusinessPayment', 'PromotionPayment')),
    occasion      TEXT,
    item_count    INTEGER NOT NULL,
    total_amount  INTEGER NOT NULL,
    store_id      TEXT,
    created_by    TEXT,
    created_at    TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);

-- Account balance and transaction status queries, answered by result callbacks.
CREATE TABLE mpesa_requests (
    id                          TEXT PRIMARY KEY,
    kind                        TEXT NOT NULL CHECK (kind IN ('balance', 'status')),
    status                      TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'timeout')),
    store_id                    TEXT,
    transaction_id              TEXT,
    receipt                     TEXT,
    originator_conversation_id  TEXT,
    conversation_id             TEXT,
    remarks                     TEXT,
    result_code                 TEXT,
    result_desc                 TEXT,
    -- JSON.
    result                      TEXT,
    raw_callback                TEXT,
    created_by                  TEXT,
    created_at                  TEXT NOT NULL,
    created_ms                  INTEGER NOT NULL,
    updated_at                  TEXT NOT NULL,
    completed_at                TEXT
);

CREATE INDEX mpesa_requests_by_originator ON mpesa_requests(originator_conversation_id)
    WHERE originator_conversation_id IS NOT NULL;
CREATE INDEX mpesa_requests_by_conversation ON mpesa_requests(conversation_id)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX mpesa_requests_by_status ON mpesa_requests(status, created_ms);

-- Answers of calls made with an Idempotency-Key, per operation.
CREATE TABLE mpesa_idempotency (
    operation   TEXT NOT NULL,
    key         TEXT NOT NULL,
    -- The normalised request, canonical JSON.
    request     TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_by  TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (operation, key)
);
