"""The runtime.v1 CRI messages the kubelet uses, as schemas for `proto.py`.

Field numbers are facts from kubernetes/cri-api (pkg/apis/runtime/v1/api.proto). Only the
messages and fields this kubelet reads or writes are listed; unknown fields are skipped on
decode. Enum values used by the kubelet are the module constants below.
"""

from __future__ import annotations

from pyk8s.kubelet.cri.proto import Field as F, message

# enum NamespaceMode
NAMESPACE_POD, NAMESPACE_CONTAINER, NAMESPACE_NODE = 0, 1, 2
# enum PodSandboxState
SANDBOX_READY, SANDBOX_NOTREADY = 0, 1
# enum ContainerState
CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED, CONTAINER_UNKNOWN = 0, 1, 2, 3
# enum Protocol
PROTOCOLS = {"TCP": 0, "UDP": 1, "SCTP": 2}

S, B, I32, I64, U32, U64, E = "string", "bool", "int32", "int64", "uint32", "uint64", "enum"


def M(number: int, name: str, repeated: bool = False) -> F:
    return F(number, "message", repeated, name)


def R(number: int, kind: str) -> F:
    return F(number, kind, True)


message("VersionRequest", version=F(1, S))
message("VersionResponse", version=F(1, S), runtime_name=F(2, S), runtime_version=F(3, S), runtime_api_version=F(4, S))
message("DNSConfig", servers=R(1, S), searches=R(2, S), options=R(3, S))
message("PortMapping", protocol=F(1, E), container_port=F(2, I32), host_port=F(3, I32), host_ip=F(4, S))
message("Mount", container_path=F(1, S), host_path=F(2, S), readonly=F(3, B), selinux_relabel=F(4, B), propagation=F(5, E))
message("NamespaceOption", network=F(1, E), pid=F(2, E), ipc=F(3, E), target_id=F(4, S))
message("Int64Value", value=F(1, I64))
message("LinuxSandboxSecurityContext", namespace_options=M(1, "NamespaceOption"), run_as_user=M(3, "Int64Value"),
        readonly_rootfs=F(4, B), supplemental_groups=R(5, I64), privileged=F(6, B), run_as_group=M(8, "Int64Value"))
message("LinuxPodSandboxConfig", cgroup_parent=F(1, S), security_context=M(2, "LinuxSandboxSecurityContext"),
        sysctls=F(3, "map"))
message("PodSandboxMetadata", name=F(1, S), uid=F(2, S), namespace=F(3, S), attempt=F(4, U32))
message("PodSandboxConfig", metadata=M(1, "PodSandboxMetadata"), hostname=F(2, S), log_directory=F(3, S),
        dns_config=M(4, "DNSConfig"), port_mappings=M(5, "PortMapping", True), labels=F(6, "map"),
        annotations=F(7, "map"), linux=M(8, "LinuxPodSandboxConfig"))
message("RunPodSandboxRequest", config=M(1, "PodSandboxConfig"), runtime_handler=F(2, S))
message("RunPodSandboxResponse", pod_sandbox_id=F(1, S))
message("PodSandboxIdRequest", pod_sandbox_id=F(1, S))  # Stop/RemovePodSandboxRequest
message("Empty")
message("PodSandboxStatusRequest", pod_sandbox_id=F(1, S), verbose=F(2, B))
message("PodIP", ip=F(1, S))
message("PodSandboxNetworkStatus", ip=F(1, S), additional_ips=M(2, "PodIP", True))
message("PodSandboxStatus", id=F(1, S), metadata=M(2, "PodSandboxMetadata"), state=F(3, E), created_at=F(4, I64),
        network=M(5, "PodSandboxNetworkStatus"), labels=F(7, "map"), annotations=F(8, "map"))
message("PodSandboxStatusResponse", status=M(1, "PodSandboxStatus"), info=F(2, "map"))
message("PodSandboxStateValue", state=F(1, E))
message("PodSandboxFilter", id=F(1, S), state=M(2, "PodSandboxStateValue"), label_selector=F(3, "map"))
message("ListPodSandboxRequest", filter=M(1, "PodSandboxFilter"))
message("PodSandbox", id=F(1, S), metadata=M(2, "PodSandboxMetadata"), state=F(3, E), created_at=F(4, I64),
        labels=F(5, "map"), annotations=F(6, "map"))
message("ListPodSandboxResponse", items=M(1, "PodSandbox", True))
message("ImageSpec", image=F(1, S), annotations=F(2, "map"), user_specified_image=F(18, S))
message("KeyValue", key=F(1, S), value=F(2, S))
message("LinuxContainerResources", cpu_period=F(1, I64), cpu_quota=F(2, I64), cpu_shares=F(3, I64),
        memory_limit_in_bytes=F(4, I64), oom_score_adj=F(5, I64))
message("Capability", add_capabilities=R(1, S), drop_capabilities=R(2, S))
message("LinuxContainerSecurityContext", capabilities=M(1, "Capability"), privileged=F(2, B),
        namespace_options=M(3, "NamespaceOption"), run_as_user=M(5, "Int64Value"), run_as_username=F(6, S),
        readonly_rootfs=F(7, B), supplemental_groups=R(8, I64), no_new_privs=F(11, B),
        run_as_group=M(12, "Int64Value"), masked_paths=R(13, S), readonly_paths=R(14, S))
message("LinuxContainerConfig", resources=M(1, "LinuxContainerResources"),
        security_context=M(2, "LinuxContainerSecurityContext"))
message("ContainerMetadata", name=F(1, S), attempt=F(2, U32))
message("ContainerConfig", metadata=M(1, "ContainerMetadata"), image=M(2, "ImageSpec"), command=R(3, S),
        args=R(4, S), working_dir=F(5, S), envs=M(6, "KeyValue", True), mounts=M(7, "Mount", True),
        labels=F(9, "map"), annotations=F(10, "map"), log_path=F(11, S), stdin=F(12, B), stdin_once=F(13, B),
        tty=F(14, B), linux=M(15, "LinuxContainerConfig"))
message("CreateContainerRequest", pod_sandbox_id=F(1, S), config=M(2, "ContainerConfig"),
        sandbox_config=M(3, "PodSandboxConfig"))
message("CreateContainerResponse", container_id=F(1, S))
message("ContainerIdRequest", container_id=F(1, S))  # Start/RemoveContainerRequest
message("StopContainerRequest", container_id=F(1, S), timeout=F(2, I64))
message("ContainerStateValue", state=F(1, E))
message("ContainerFilter", id=F(1, S), state=M(2, "ContainerStateValue"), pod_sandbox_id=F(3, S),
        label_selector=F(4, "map"))
message("ListContainersRequest", filter=M(1, "ContainerFilter"))
message("Container", id=F(1, S), pod_sandbox_id=F(2, S), metadata=M(3, "ContainerMetadata"), image=M(4, "ImageSpec"),
        image_ref=F(5, S), state=F(6, E), created_at=F(7, I64), labels=F(8, "map"), annotations=F(9, "map"),
        image_id=F(10, S))
message("ListContainersResponse", containers=M(1, "Container", True))
message("ContainerStatusRequest", container_id=F(1, S), verbose=F(2, B))
message("ContainerStatus", id=F(1, S), metadata=M(2, "ContainerMetadata"), state=F(3, E), created_at=F(4, I64),
        started_at=F(5, I64), finished_at=F(6, I64), exit_code=F(7, I32), image=M(8, "ImageSpec"),
        image_ref=F(9, S), reason=F(10, S), message=F(11, S), labels=F(12, "map"), annotations=F(13, "map"),
        mounts=M(14, "Mount", True), log_path=F(15, S), image_id=F(17, S))
message("ContainerStatusResponse", status=M(1, "ContainerStatus"), info=F(2, "map"))
message("ExecSyncRequest", container_id=F(1, S), cmd=R(2, S), timeout=F(3, I64))
message("ExecSyncResponse", stdout=F(1, "bytes"), stderr=F(2, "bytes"), exit_code=F(3, I32))
message("ExecRequest", container_id=F(1, S), cmd=R(2, S), tty=F(3, B), stdin=F(4, B), stdout=F(5, B), stderr=F(6, B))
message("AttachRequest", container_id=F(1, S), stdin=F(2, B), tty=F(3, B), stdout=F(4, B), stderr=F(5, B))
message("PortForwardRequest", pod_sandbox_id=F(1, S), port=R(2, I32))
message("UrlResponse", url=F(1, S))  # Exec/Attach/PortForwardResponse
message("ImageFilter", image=M(1, "ImageSpec"))
message("ListImagesRequest", filter=M(1, "ImageFilter"))
message("Image", id=F(1, S), repo_tags=R(2, S), repo_digests=R(3, S), size=F(4, U64), uid=M(5, "Int64Value"),
        username=F(6, S), spec=M(7, "ImageSpec"), pinned=F(8, B))
message("ListImagesResponse", images=M(1, "Image", True))
message("ImageStatusRequest", image=M(1, "ImageSpec"), verbose=F(2, B))
message("ImageStatusResponse", image=M(1, "Image"), info=F(2, "map"))
message("AuthConfig", username=F(1, S), password=F(2, S), auth=F(3, S), server_address=F(4, S),
        identity_token=F(5, S), registry_token=F(6, S))
message("PullImageRequest", image=M(1, "ImageSpec"), auth=M(2, "AuthConfig"), sandbox_config=M(3, "PodSandboxConfig"))
message("PullImageResponse", image_ref=F(1, S))
message("RemoveImageRequest", image=M(1, "ImageSpec"))
message("NetworkConfig", pod_cidr=F(1, S))
message("RuntimeConfig", network_config=M(1, "NetworkConfig"))
message("UpdateRuntimeConfigRequest", runtime_config=M(1, "RuntimeConfig"))
message("RuntimeCondition", type=F(1, S), status=F(2, B), reason=F(3, S), message=F(4, S))
message("RuntimeStatus", conditions=M(1, "RuntimeCondition", True))
message("StatusRequest", verbose=F(1, B))
message("StatusResponse", status=M(1, "RuntimeStatus"), info=F(2, "map"))
message("UInt64Value", value=F(1, U64))
message("FilesystemIdentifier", mountpoint=F(1, S))
message("FilesystemUsage", timestamp=F(1, I64), fs_id=M(2, "FilesystemIdentifier"), used_bytes=M(3, "UInt64Value"),
        inodes_used=M(4, "UInt64Value"))
message("ImageFsInfoResponse", image_filesystems=M(1, "FilesystemUsage", True))

# method name -> (service, request schema, response schema)
RUNTIME = "runtime.v1.RuntimeService"
IMAGES = "runtime.v1.ImageService"
METHODS: dict[str, tuple[str, str, str]] = {
    "Version": (RUNTIME, "VersionRequest", "VersionResponse"),
    "RunPodSandbox": (RUNTIME, "RunPodSandboxRequest", "RunPodSandboxResponse"),
    "StopPodSandbox": (RUNTIME, "PodSandboxIdRequest", "Empty"),
    "RemovePodSandbox": (RUNTIME, "PodSandboxIdRequest", "Empty"),
    "PodSandboxStatus": (RUNTIME, "PodSandboxStatusRequest", "PodSandboxStatusResponse"),
    "ListPodSandbox": (RUNTIME, "ListPodSandboxRequest", "ListPodSandboxResponse"),
    "CreateContainer": (RUNTIME, "CreateContainerRequest", "CreateContainerResponse"),
    "StartContainer": (RUNTIME, "ContainerIdRequest", "Empty"),
    "StopContainer": (RUNTIME, "StopContainerRequest", "Empty"),
    "RemoveContainer": (RUNTIME, "ContainerIdRequest", "Empty"),
    "ListContainers": (RUNTIME, "ListContainersRequest", "ListContainersResponse"),
    "ContainerStatus": (RUNTIME, "ContainerStatusRequest", "ContainerStatusResponse"),
    "ExecSync": (RUNTIME, "ExecSyncRequest", "ExecSyncResponse"),
    "Exec": (RUNTIME, "ExecRequest", "UrlResponse"),
    "Attach": (RUNTIME, "AttachRequest", "UrlResponse"),
    "PortForward": (RUNTIME, "PortForwardRequest", "UrlResponse"),
    "UpdateRuntimeConfig": (RUNTIME, "UpdateRuntimeConfigRequest", "Empty"),
    "Status": (RUNTIME, "StatusRequest", "StatusResponse"),
    "ListImages": (IMAGES, "ListImagesRequest", "ListImagesResponse"),
    "ImageStatus": (IMAGES, "ImageStatusRequest", "ImageStatusResponse"),
    "PullImage": (IMAGES, "PullImageRequest", "PullImageResponse"),
    "RemoveImage": (IMAGES, "RemoveImageRequest", "Empty"),
    "ImageFsInfo": (IMAGES, "Empty", "ImageFsInfoResponse"),
}
