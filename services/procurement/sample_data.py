"""Reference and sample data: the frameworks the programme buys through, the programme budget,
and (in the embedded run) a few call-off contracts.

Frameworks and the budget are seeded in every run (only where absent: they are editable, and
an edit stays). The framework ids are this platform's own short names, not Crown Commercial
Service reference numbers; terms follow the issue: G-Cloud's earlier iterations allow 24
months plus up to two 12-month extensions, the later ones 36 plus 12. The sample call-offs are
dated relative to the clock's today, so that some are in their notice window whenever the
platform runs.
"""

from __future__ import annotations

from datetime import date

from contracts.procurement import AwardRoute, SpendCategory, SpendClass
from services.procurement.budget import BudgetLine
from services.procurement.domain import AwardSpec, FrameworkSpec, Lot, add_months, budget_year_of
from services.procurement.handlers import ProcurementHandlers
from services.runtime.errors import Conflict
from services.runtime.repository import AlreadyStored

C, R = SpendCategory, AwardRoute
STRATEGY = "Total Technology Strategy 2014-17"
STRATEGY_YEARS = ("2014-15", "2015-16", "2016-17", "2017-18")
CATEGORY_SHARE_PERCENT = {C.END_USER_DEVICES: 30, C.HOSTING: 20, C.SOFTWARE: 15, C.SUPPORT: 25,
                          C.MIGRATION_SERVICES: 10}
REPLACEMENT_FRAMEWORK = "SPRINT-II"


def _g_cloud(iteration: int, opened: date, term: int, extensions: int, migration_lot: bool) -> FrameworkSpec:
    lots = [Lot(name="Lot 1: Cloud hosting", categories=[C.HOSTING], routes=[R.DIRECT_AWARD]),
            Lot(name="Lot 2: Cloud software", categories=[C.SOFTWARE], routes=[R.DIRECT_AWARD]),
            Lot(name="Lot 3: Cloud support", categories=[C.SUPPORT], routes=[R.DIRECT_AWARD])]
    if migration_lot:
        lots.append(Lot(name="Lot 4: Cloud migration", categories=[C.MIGRATION_SERVICES], routes=[R.DIRECT_AWARD]))
    return FrameworkSpec(framework_id=f"GCLOUD-{iteration}", name=f"G-Cloud {iteration}", lots=lots,
                         initial_term_months=term, extension_months=12, max_extensions=extensions,
                         open_from=opened)


def frameworks() -> list[FrameworkSpec]:
    return [
        _g_cloud(5, date(2014, 3, 1), 24, 2, False),
        _g_cloud(6, date(2014, 11, 1), 24, 2, False),
        _g_cloud(7, date(2015, 11, 1), 24, 2, False),
        _g_cloud(12, date(2020, 9, 1), 36, 1, True),
        FrameworkSpec(framework_id=REPLACEMENT_FRAMEWORK, name="Sprint ii", lots=[
            Lot(name="Lot 1: IT equipment", categories=[C.END_USER_DEVICES],
                routes=[R.DIRECT_AWARD, R.FURTHER_COMPETITION])],
            initial_term_months=24, extension_months=12, max_extensions=2, open_from=date(2012, 1, 1)),
        FrameworkSpec(framework_id="TECH-PRODUCTS", name="Technology Products (successor of CITHS)", lots=[
            Lot(name="Lot 1: Hardware", categories=[C.END_USER_DEVICES], routes=[R.FURTHER_COMPETITION]),
            Lot(name="Lot 2: Software", categories=[C.SOFTWARE], routes=[R.FURTHER_COMPETITION])],
            initial_term_months=24, extension_months=12, max_extensions=2, open_from=date(2014, 6, 1)),
        FrameworkSpec(framework_id="TECH-SERVICES", name="Technology Services (successor of SITS)", lots=[
            Lot(name="Lot 1: Service desk and support", categories=[C.SUPPORT], routes=[R.FURTHER_COMPETITION]),
            Lot(name="Lot 2: Transition and migration", categories=[C.MIGRATION_SERVICES],
                routes=[R.FURTHER_COMPETITION])],
            initial_term_months=48, extension_months=12, max_extensions=1, open_from=date(2014, 6, 1)),
    ]


def budget_years(today: date) -> tuple[str, ...]:
    """The strategy's years while the clock is in them; otherwise four years from today's."""
    if budget_year_of(today) in STRATEGY_YEARS:
        return STRATEGY_YEARS
    start = int(budget_year_of(today)[:4])
    return tuple(f"{y}-{(y + 1) % 100:02d}" for y in range(start, start + 4))


def budget_lines(total_pence: int, years: tuple[str, ...]) -> list[BudgetLine]:
    """``total_pence`` split evenly by year, and by category in fixed shares (whole pence;
    what rounding leaves goes to the last line)."""
    lines = []
    per_year = total_pence // len(years)
    for year in years:
        for category, share in CATEGORY_SHARE_PERCENT.items():
            lines.append(BudgetLine(year=year, category=category, allocated_pence=per_year * share // 100))
    rest = total_pence - sum(line.allocated_pence for line in lines)
    last = lines[-1]
    lines[-1] = last.model_copy(update={"allocated_pence": last.allocated_pence + rest})
    return lines


async def seed_reference_data(handlers: ProcurementHandlers, total_pence: int, today: date) -> None:
    """Frameworks and the budget, where absent."""
    for spec in frameworks():
        try:
            await handlers.add_framework(spec)
        except AlreadyStored:
            pass
    if await handlers.budgets.load("programme") is None:
        try:
            await handlers.set_budget(f"{STRATEGY} (GBP {total_pence // 100_000_000}m)",
                                      budget_lines(total_pence, budget_years(today)))
        except AlreadyStored:
            pass


def sample_contracts(today: date) -> list[AwardSpec]:
    def started(months_ago: int) -> date:
        return add_months(today.replace(day=1), -months_ago)

    return [
        AwardSpec(contract_id="CO-XP-SUPPORT", title="Windows XP custom support", framework_id="GCLOUD-7",
                  lot="Lot 3: Cloud support", supplier="Microsoft", category=C.SUPPORT,
                  classification=SpendClass.LEGACY, route=R.DIRECT_AWARD, value_pence=165_000_000,
                  start=started(22), initial_term_months=24),
        AwardSpec(contract_id="CO-DC-HOSTING", title="Legacy data centre hosting", framework_id="GCLOUD-6",
                  lot="Lot 1: Cloud hosting", supplier="Atos", category=C.HOSTING,
                  classification=SpendClass.LEGACY, route=R.DIRECT_AWARD, value_pence=1_200_000_000,
                  start=started(20), initial_term_months=24),
        AwardSpec(contract_id="CO-DEVICES", title="Laptops and tablets for front-line officers",
                  framework_id=REPLACEMENT_FRAMEWORK, lot="Lot 1: IT equipment", supplier="Dell",
                  category=C.END_USER_DEVICES, classification=SpendClass.MODERN, route=R.FURTHER_COMPETITION,
                  value_pence=3_000_000_000, start=started(3), initial_term_months=24),
        AwardSpec(contract_id="CO-BWV", title="Body-worn video cameras", framework_id="TECH-PRODUCTS",
                  lot="Lot 1: Hardware", supplier="Taser International", category=C.END_USER_DEVICES,
                  classification=SpendClass.MODERN, route=R.FURTHER_COMPETITION, value_pence=300_000_000,
                  start=started(1), initial_term_months=24),
        AwardSpec(contract_id="CO-SERVICE-DESK", title="Outsourced service desk", framework_id="TECH-SERVICES",
                  lot="Lot 1: Service desk and support", supplier="Capita", category=C.SUPPORT,
                  classification=SpendClass.LEGACY, route=R.FURTHER_COMPETITION, value_pence=2_500_000_000,
                  start=started(44), initial_term_months=48),
    ]


async def load_sample_contracts(handlers: ProcurementHandlers, today: date) -> None:
    """The sample call-offs, where absent (none starts before its framework opened)."""
    for spec in sample_contracts(today):
        if await handlers.contracts.load(spec.contract_id) is not None:
            continue
        framework = await handlers.framework(spec.framework_id)
        try:
            await handlers.award(spec.model_copy(update={"start": max(spec.start, framework.open_from)}))
        except Conflict:  # awarded meanwhile by another replica
            pass
