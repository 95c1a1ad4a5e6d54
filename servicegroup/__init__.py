"""servicegroup: which members of a group of services are alive.

See :class:`servicegroup.API`; options are in :mod:`servicegroup.conf`.
"""

from servicegroup.api import API
from servicegroup.member import Member
from servicegroup.membership import MembershipChange

__all__ = ["API", "Member", "MembershipChange"]
