"""Readers behind :func:`behaviorlm.data.io.read`, one module per family of formats.

``tabular`` (CSV / TSV / Parquet / JSON Lines files and behaviorlm folders), ``movielens``,
``recbole`` and ``seqtext`` (SASRec / S3Rec sequence files) parse their files;
``normalize`` and ``tables`` hold the shared rules for events and side tables.
"""
