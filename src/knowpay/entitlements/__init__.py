"""What a buyer may access, granted only by a payment, extended by renewals."""
