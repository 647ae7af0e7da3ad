-- mpesa V3: an STK push whose answer was lost can still be settled
-- (docs/ARCHITECTURE.md, "Two-phase outbound"). The push's CallBackURL ends in
-- its submission id (`…/stk/<id>`), so Daraja's callback finds the intent even
-- when the CheckoutRequestID was never recorded; the intent then becomes the
-- transaction, so it keeps what the transaction needs.
ALTER TABLE mpesa_submissions ADD COLUMN store_id TEXT;
ALTER TABLE mpesa_submissions ADD COLUMN account_reference TEXT;
ALTER TABLE mpesa_submissions ADD COLUMN description TEXT;
ALTER TABLE mpesa_submissions ADD COLUMN created_by TEXT;
CREATE INDEX mpesa_submissions_by_age ON mpesa_submissions(created_ms);
