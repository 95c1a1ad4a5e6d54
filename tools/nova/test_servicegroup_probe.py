"""Proof that a Nova test run uses the servicegroup driver the stage chose.

tools/run-nova-tests.sh copies this file into the installed nova's functional
test tree (``nova/tests/functional/test_servicegroup_probe.py``) and runs it
in the same stestr run, so in the same worker processes, environment and
fixtures (``nova.test.TestCase`` with Nova's ``ConfFixture``) as Nova's own
tests. It fails when the driver in use is not the one the stage asked for in
``SERVICEGROUP_NOVA_PROBE_DRIVER`` (``db`` or ``tooz``), so a driver switch
that silently does not take effect fails the stage instead of comparing the
db driver with itself.

The switch itself is oslo.config's environment source: ``OS_DEFAULT__
SERVICEGROUP_DRIVER`` and ``OS_DEFAULT__SERVICEGROUP_TOOZ_URL``. Values from
the environment rank above defaults and config files, below a test's own
``set_override`` (``self.flags``); Nova's ConfFixture only sets defaults.
"""

import os
import time

import nova.conf
from nova import test
from oslo_config import cfg

CONF = nova.conf.CONF

_CLASSES = {
    "db": "nova.servicegroup.drivers.db.DbDriver",
    "tooz": "servicegroup.nova.ToozDriver",
}


class ServiceGroupDriverProbe(test.TestCase):
    """Nova's services in this run use the driver the stage asked for."""

    def _wait_up(self, driver, ref, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not driver.is_up(ref):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def test_driver_in_use(self):
        want = os.environ.get("SERVICEGROUP_NOVA_PROBE_DRIVER")
        if not want:
            self.skipTest("not run by tools/run-nova-tests.sh")
        self.assertEqual(want, CONF.servicegroup_driver)

        service = self.start_service("conductor", host="probe-host")
        driver = service.servicegroup_api._driver
        cls = type(driver)
        self.assertEqual(_CLASSES[want], f"{cls.__module__}.{cls.__qualname__}")

        # The service's record, as Nova's API passes it to the driver.
        ref = service.service_ref
        if want == "tooz":
            # Where the choice came from: the environment, through the
            # fixture's parse of the global CONF.
            loc = CONF.get_location("servicegroup_driver")
            self.assertEqual(cfg.Locations.environment, loc.location)
            self.assertEqual(
                os.environ["SERVICEGROUP_NOVA_PROBE_URL"],
                CONF.servicegroup_tooz_url,
            )
        self.assertTrue(self._wait_up(driver, ref), "never seen up")
