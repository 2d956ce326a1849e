package inject

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podgate/podgate/internal/options"
)

// sidecar is the podgate container: the options rendered as its arguments, the secrets from the
// pod's Secret in its environment, a port per port taken over plus the admin port, and a
// security context that passes Pod Security "restricted" on its own.
func (in *injection) sidecar() corev1.Container {
	s := in.s
	admin := intstr.FromInt32(s.adminPort)
	httpGet := func(path string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: admin, Scheme: corev1.URISchemeHTTP}}
	}
	secretEnv := func(flag, key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: options.EnvVar(flag), ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.secret}, Key: key, Optional: &optional}}}
	}
	var ports []corev1.ContainerPort
	for _, p := range in.ports {
		ports = append(ports, p.sidecarPort())
	}
	yes, no := true, false
	uid, gid := in.cfg.RunAsUser, in.cfg.RunAsGroup
	c := corev1.Container{
		Name:            SidecarName,
		Image:           s.image,
		ImagePullPolicy: in.cfg.ImagePullPolicy,
		Args:            s.opts.Args(),
		Env: []corev1.EnvVar{
			secretEnv(options.FlagClientSecret, SecretKeyClientSecret, true),
			secretEnv(options.FlagCookieSecret, SecretKeyCookieSecret, false),
			// The sidecar sets its Go soft memory limit from its own container's limit, so a
			// hostile client's garbage is collected before the OOM killer acts. (Without a limit
			// the downward API gives the node's allocatable memory: no effective soft limit.)
			{Name: options.EnvVar(options.FlagMemoryLimit), ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				ContainerName: SidecarName, Resource: "limits.memory"}}},
		},
		Ports:     append(ports, corev1.ContainerPort{Name: AdminPortName, ContainerPort: s.adminPort, Protocol: corev1.ProtocolTCP}),
		Resources: s.resources,
		// Startup gates the app (native sidecar): /ping answers once every listener is bound. With
		// capture it goes through the check port instead (checkProbe), so it also proves the rules.
		StartupProbe:   &corev1.Probe{ProbeHandler: httpGet("/ping"), PeriodSeconds: 1, FailureThreshold: 60, TimeoutSeconds: 1},
		ReadinessProbe: &corev1.Probe{ProbeHandler: httpGet("/ready"), PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 2},
		LivenessProbe:  &corev1.Probe{ProbeHandler: httpGet("/ping"), PeriodSeconds: 10, FailureThreshold: 3, TimeoutSeconds: 2},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &gid,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Privileged:               &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if probe := in.checkProbe(); probe != nil {
		c.StartupProbe = probe
	}
	if s.native {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	return c
}
