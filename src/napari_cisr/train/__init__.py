"""Training and evaluation of CISR-PSI (paper Algorithm 1, Eq. 8, Section 4)."""
