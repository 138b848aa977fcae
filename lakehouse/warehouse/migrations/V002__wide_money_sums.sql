-- Money sums as wide as ksqlDB's (ksql/03_tables.sql sums into DECIMAL(20, 2)): a busy merchant's totals pass
-- 10^16, the size of V001's DECIMAL(18, 2). Averages, minima and maxima stay below a single amount's size.
ALTER TABLE fact_user_transaction_summary MODIFY total_amount DECIMAL(20, 2) NULL;
ALTER TABLE fact_user_transaction_summary_eur MODIFY total_amount_eur DECIMAL(20, 2) NULL;
ALTER TABLE fact_payment_method_totals MODIFY total_amount_eur DECIMAL(20, 2) NULL;
ALTER TABLE fact_product_purchase_counts MODIFY total_revenue DECIMAL(20, 2) NULL;
