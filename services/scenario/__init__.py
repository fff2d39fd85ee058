"""The programme scenario: not a service (it has no API, store or events of its own) but a
driver of the four services on a simulated clock, behind `estate scenario`. plan.py is the pure
calibration (the published trajectory, fix dates, rollouts); driver.py runs it through the
services' handlers and reads every figure back from reporting."""
