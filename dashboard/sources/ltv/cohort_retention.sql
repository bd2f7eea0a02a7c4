select * from cohort_retention
