"""knowpay's own web pages: the cashier (/pay), the buyer center (/me), login, and the
foundation the staff console (/admin) builds on — Jinja2 templates, Babel catalogs,
signed session cookies, static files served locally."""
