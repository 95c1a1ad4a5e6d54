"""servicegroup: which members of a group of services are alive.

See :class:`servicegroup.API`; options are in :mod:`servicegroup.conf`.
"""

import importlib.metadata

from servicegroup.api import API
from servicegroup.member import Member
from servicegroup.membership import MembershipChange

try:
    __version__ = importlib.metadata.version("servicegroup")
except importlib.metadata.PackageNotFoundError:  # a checkout not installed
    __version__ = "0+unknown"

__all__ = ["API", "Member", "MembershipChange", "__version__"]
