-- More ways to pay (docs/payments.md): WeChat H5, APP and mini program; Alipay APP
-- (order string) and precreate (QR). Attempts record the method they were launched with.
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_method_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_method_check
    CHECK (method IN ('page', 'wap', 'native', 'jsapi', 'h5', 'app', 'miniprogram', 'precreate'));

-- migrate:down
-- Fails while attempts with the new methods exist: those are real trades, not dropped here.
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_method_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_method_check
    CHECK (method IN ('page', 'wap', 'native', 'jsapi'));
