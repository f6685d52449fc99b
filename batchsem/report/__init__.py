"""Presenting runs outside the terminal: CSV and Markdown exports, the HTML report, PNG figures.

Reads result documents and comparisons; never measures. Only
:mod:`batchsem.report.figures` and :mod:`batchsem.report.html` need the
optional ``batchsem[report]`` extra (matplotlib); the exporters need nothing.
"""
