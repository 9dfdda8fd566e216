"""A local stand-in for BOOM (Kowalski's successor), built from BOOM's own code as docs/contracts.md
describes it. So far: `documents.py`, the ZTF documents as BOOM's ingestion writes them (`ZTF_alerts`,
`ZTF_alerts_aux`, `ZTF_alerts_cutouts`). The HTTP server follows (issue 14)."""
