"""
Benchmarks of exmta against Postfix (issue 6): see bench/README.rst.  Not
part of the test suite, not installed with exmta.
"""
