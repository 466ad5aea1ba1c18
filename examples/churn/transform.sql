-- The dataset the churn models learn from: one row per customer of the CRM export.
-- Each source of valueloop.yaml is a table of that name. Personal columns arrive already
-- treated as the approved DPIA says: name is gone, email is a keyed pseudonym, birth_date
-- is a year and postcode a region prefix.
SELECT
    customer_id,
    email,
    birth_date,
    postcode,
    contract,
    payment_method,
    tenure_months,
    monthly_charges,
    support_calls,
    round(monthly_charges * tenure_months, 2) AS total_charges,
    churned
FROM customers
WHERE customer_id IS NOT NULL
