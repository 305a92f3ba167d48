//! Continuous and ad-hoc SQL-ish queries over streams (issue to come).
