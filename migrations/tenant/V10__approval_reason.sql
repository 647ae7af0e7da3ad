-- Why a person rejected an approval (optional, at most 500 characters),
-- returned with the approval and written to the audit row of the rejection.
ALTER TABLE approvals ADD COLUMN reason TEXT;
