"""The KPI catalogue (DOMAIN.md): each KPI is a numerator counter over a denominator counter."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Kpi:
    name: str
    numerator: str
    denominator: str | None  # None: the KPI is a count, value = numerator
    description: str
    unit: str = "ratio"


KPIS: dict[str, Kpi] = {
    k.name: k
    for k in (
        Kpi("received", "received", None, "Cases received.", "cases"),
        Kpi("resolved", "resolved", None, "Cases resolved (status 9).", "cases"),
        Kpi("returned", "returned", None, "Results returned.", "cases"),
        Kpi("online_share", "received_online", "received",
            "Cases received online (partial + full) / cases received."),
        Kpi("full_online_share", "received_full", "received",
            "Cases received online at level full / cases received."),
        Kpi("online_resolution_share", "resolved_online", "resolved",
            "Resolved cases received online / cases resolved."),
        Kpi("e_transfer_rate", "transfers_electronic", "transfers",
            "Transfers made electronically / transfers."),
        Kpi("e_transfer_case_rate", "resolved_all_electronic", "resolved_with_transfer",
            "Resolved cases all of whose transfers were electronic / resolved cases with a "
            "transfer."),
        Kpi("online_payment_rate", "payments_online", "payments",
            "Payments made online / payments."),
        Kpi("postal_intake_share", "received_postal", "received",
            "Cases received by post / cases received."),
        Kpi("postal_return_share", "returned_post", "returned",
            "Results returned by post / results returned."),
        Kpi("on_time_rate", "resolved_on_time", "resolved",
            "Resolved cases not late / cases resolved."),
        Kpi("overdue_open", "overdue_open", None,
            "Open cases past their due date, now.", "cases"),
        Kpi("digitisation_rate", "resolved_digitised", "resolved",
            "Resolved cases whose result was digitised / cases resolved."),
        Kpi("satisfaction_rate", "ratings_satisfied", "ratings",
            "Ratings satisfied or very satisfied / ratings."),
        Kpi("mean_resolution_days", "resolution_days", "resolved",
            "Working days from receipt to resolution, pauses excluded / cases resolved.",
            "days"),
    )
}
