"""Import an existing register of members (signed up on paper) from a CSV file.

Two phases. `plan` reads the file and the database and decides every row's outcome without
writing: the phone normalised as the join form does, duplicates of existing members (same blind
index) and inside the file, places resolved, and which of the file's member numbers can be kept.
`write_batch` then inserts the importable rows of one batch with one executemany (Core), under
the district rows' lock that approval takes for numbering; the caller commits once per batch.

Member numbers stay gapless (as approval's, app/services/roster/decisions.py): a file's number
`<DISTRICT>-NNNNNN` is kept when it is well-formed, names the row's district, lies above the
district's counter when the import was planned and appears once in the file; every other row
gets the next free number, skipping the kept ones still to come. The counter is raised past each
batch's highest number in the batch's transaction, so approvals meanwhile never take a number
the batch used. A kept number that an approval took between batches is re-assigned.

Nothing here logs or reports a name or a phone in clear: reports carry row numbers, outcomes,
reason codes and at most a masked phone (`138****0000`).
"""

from app.services.member_import.rows import (
    DUPLICATE_EXISTING,
    DUPLICATE_IN_FILE,
    IMPORTED,
    REJECTED,
    WOULD_IMPORT,
    ImportFileError,
    Plan,
    Row,
    decode,
    masked,
    member_number,
    plan,
)
from app.services.member_import.writing import (
    BATCH_SIZE,
    Numbers,
    Writer,
    batches,
    forget_personal_data,
    preview_numbers,
    record,
    report_csv,
)

__all__ = [
    "BATCH_SIZE",
    "DUPLICATE_EXISTING",
    "DUPLICATE_IN_FILE",
    "IMPORTED",
    "REJECTED",
    "WOULD_IMPORT",
    "ImportFileError",
    "Numbers",
    "Plan",
    "Row",
    "Writer",
    "batches",
    "decode",
    "forget_personal_data",
    "masked",
    "member_number",
    "plan",
    "preview_numbers",
    "record",
    "report_csv",
]
