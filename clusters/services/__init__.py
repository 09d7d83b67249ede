"""Writes for clients, clusters and grants: one module per concern, every service exported here.

Every change to a cluster's desired state is recorded as a ``ClusterChange`` in the same
transaction (``changes``): the GitOps outbox that ``clusters.delivery`` turns into commits.
"""

from clusters.services.changes import ChangeSource, ClusterChangeResult
from clusters.services.clients import (
    account_deactivate,
    account_delete,
    account_reactivated_record,
    client_create,
    client_slug_check,
    client_update,
    grant_remove,
    grant_set,
)
from clusters.services.clusters import (
    DUPLICATE_CLUSTER,
    RELEASE_NAME_MAX,
    cluster_create,
    cluster_keys_reencrypt,
    cluster_slug_check,
    cluster_spec_validate,
    cluster_update,
    scale_down_problem,
)
from clusters.services.credentials import (
    KeysShownTo,
    cluster_credentials_reveal,
    cluster_credentials_rotate,
    cluster_credentials_rotation_finish,
    key_rotations_finish_due,
)
from clusters.services.decommission import cluster_decommission, cluster_remove
from clusters.services.invitation_ends import inviter_privileges_lowered, inviter_taken_back
from clusters.services.invitations import (
    invitation_accept,
    invitation_check,
    invitation_create,
    invitation_open,
    invitation_revoke,
    invitation_sign_up_google,
    invitation_sign_up_password,
)
from clusters.services.members import (
    client_access_token_revoke,
    google_identity_provision,
    member_remove,
    member_role_change,
)
from clusters.services.policy import PolicyInput, sign_in_policy_preview, sign_in_policy_set
from clusters.services.storage import (
    storage_expansion_cancel,
    storage_expansion_check,
    storage_expansion_complete,
    storage_expansion_request,
)

__all__ = [
    "DUPLICATE_CLUSTER",
    "RELEASE_NAME_MAX",
    "ClusterChangeResult",
    "PolicyInput",
    "client_access_token_revoke",
    "google_identity_provision",
    "invitation_accept",
    "invitation_check",
    "invitation_create",
    "invitation_open",
    "invitation_revoke",
    "invitation_sign_up_google",
    "invitation_sign_up_password",
    "inviter_privileges_lowered",
    "inviter_taken_back",
    "member_remove",
    "member_role_change",
    "sign_in_policy_preview",
    "sign_in_policy_set",
    "client_create",
    "client_slug_check",
    "client_update",
    "cluster_create",
    "cluster_decommission",
    "cluster_remove",
    "KeysShownTo",
    "ChangeSource",
    "cluster_credentials_reveal",
    "cluster_credentials_rotate",
    "cluster_credentials_rotation_finish",
    "cluster_keys_reencrypt",
    "cluster_slug_check",
    "cluster_spec_validate",
    "cluster_update",
    "grant_remove",
    "account_deactivate",
    "account_delete",
    "account_reactivated_record",
    "grant_set",
    "key_rotations_finish_due",
    "scale_down_problem",
    "storage_expansion_cancel",
    "storage_expansion_complete",
    "storage_expansion_check",
    "storage_expansion_request",
]
