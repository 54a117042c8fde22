-- Raised inside the single-statement deduction (app.open_api.quota) to roll the
-- whole statement back when the wallet or the token refuses: LU402 = balance,
-- LU429 = token quota/status. VOLATILE so CASE evaluates it only when reached.
CREATE FUNCTION open_api_refuse(code text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'open API deduction refused: %', code USING ERRCODE = code;
END $$;

-- migrate:down
DROP FUNCTION open_api_refuse(text);
