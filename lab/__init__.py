"""The lab beside the library: the paper's experiments, the tables of the bench data, the docs generator, the findings.

``attack/`` is what a researcher imports (pure torch); ``lab/`` uses it and is never imported by it.

  reproduce   ``lavan reproduce <name>``: the paper's experiments as resumable runs with committed reports
  tables      readers and summaries of the bench data in ``bench/results/`` (one module per data source)
  docs        ``lavan docs`` (``make docs``): the generated blocks of README.md, docs/ and reports/ from that data
  findings    the paper's figures (``PAPER``) beside ours, for the README and the app
  cli         ``lavan`` / ``python -m lab``: attack's sub-commands plus ``reproduce`` and ``docs``
"""
