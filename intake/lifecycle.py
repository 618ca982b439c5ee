"""The case state machine: which event is allowed in which national-portal status.

Statuses (DOMAIN.md): 1 registered online, 2 received, 3 refused, 4 in processing,
5 waiting for supplements, 6 waiting for a fee, 7 withdrawn, 8 stopped, 9 resolved, 10 returned.
"""

from dataclasses import dataclass

STATUS_NAMES: dict[int, str] = {
    1: "Mới đăng ký",
    2: "Được tiếp nhận",
    3: "Không được tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung giấy tờ",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã xử lý xong",
    10: "Đã trả kết quả",
}
OPEN = frozenset({2, 4, 5, 6})
TERMINAL = frozenset({3, 7, 8, 10})
NEW = 0  # no case yet


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[int]
    # Where the case goes; None keeps the status (a payment, a rating, a digitised result).
    to: dict[int, int] | int | None


TRANSITIONS: dict[str, Transition] = {
    "submitted": Transition(frozenset({NEW}), 1),
    "received": Transition(frozenset({NEW, 1}), 2),
    "refused": Transition(frozenset({1, 2}), 3),
    # A transfer moves a just-received case into processing; a pause or a fee wait goes on.
    "transferred": Transition(frozenset({2, 4, 5, 6}), {2: 4}),
    "supplement_requested": Transition(frozenset({2, 4}), 5),
    "supplement_received": Transition(frozenset({5}), 4),
    "payment_requested": Transition(frozenset({2, 4}), 6),
    "paid": Transition(frozenset({1, 2, 4, 6, 9}), {6: 4}),
    "resolved": Transition(frozenset({2, 4}), 9),
    "result_digitised": Transition(frozenset({9, 10}), None),
    "returned": Transition(frozenset({9}), 10),
    "apology_issued": Transition(OPEN, None),
    "withdrawn": Transition(frozenset({1, 2, 4, 5, 6}), 7),
    "stopped": Transition(OPEN, 8),
    "rated": Transition(frozenset({9, 10}), None),
    "overdue": Transition(frozenset({2, 4, 6}), None),
}
EVENT_NAMES: tuple[str, ...] = tuple(TRANSITIONS)


def allowed_events(status: int) -> list[str]:
    return [name for name, t in TRANSITIONS.items() if status in t.allowed_from]


def next_status(event: str, status: int) -> int | None:
    """The status after `event`, or None when the event is not allowed in `status`."""
    t = TRANSITIONS[event]
    if status not in t.allowed_from:
        return None
    if t.to is None:
        return status
    if isinstance(t.to, dict):
        return t.to.get(status, status)
    return t.to
