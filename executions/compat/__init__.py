"""Other platforms' APIs over this one's: Judge0 CE (judge0.py) and Piston v2 (piston.py).

Each dialect only translates: a request becomes a submissions.Submission admitted by
submissions.submit (quotas, tenancy, idempotency, fairness and metrics stay the platform's), and
an Execution is shown in the dialect's shape. Nothing here runs code or changes a status.
"""
