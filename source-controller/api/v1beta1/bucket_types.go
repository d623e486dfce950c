package v1beta1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BucketKind is the kind name of Bucket.
const BucketKind = "Bucket"

// Providers of Bucket.spec.provider and Bucket.spec.sts.provider.
const (
	// BucketProviderGeneric is any S3-compatible server (MinIO, Ceph RGW, AWS S3 with static
	// keys), reached with the keys of spec.secretRef or anonymously.
	BucketProviderGeneric = "generic"
	// BucketProviderAWS is AWS S3 with the controller's (or a ServiceAccount's) AWS identity.
	BucketProviderAWS = "aws"
	// BucketProviderGoogle is Google Cloud Storage, through its JSON API, with the service
	// account key of spec.secretRef or the GCP workload identity.
	BucketProviderGoogle = "gcp"
	// BucketProviderAzure is Azure Blob Storage, with the account key, SAS, service principal or
	// managed identity of spec.secretRef, or the Azure workload identity.
	BucketProviderAzure = "azure"
	// STSProviderLDAP is MinIO's AssumeRoleWithLDAPIdentity.
	STSProviderLDAP = "ldap"
)

// BucketSpec says which bucket to read and what of it to publish.
// +kubebuilder:validation:XValidation:rule="!has(self.sts) || self.provider == 'aws' || self.provider == 'generic'",message="sts can only be used with the aws and generic providers"
// +kubebuilder:validation:XValidation:rule="!has(self.sts) || self.sts.provider != 'aws' || self.provider == 'aws'",message="sts.provider aws needs spec.provider aws"
// +kubebuilder:validation:XValidation:rule="!has(self.sts) || self.sts.provider != 'ldap' || self.provider == 'generic'",message="sts.provider ldap needs spec.provider generic"
// +kubebuilder:validation:XValidation:rule="!has(self.sts) || !has(self.sts.secretRef) || self.sts.provider == 'ldap'",message="sts.secretRef is only supported for the ldap sts provider"
// +kubebuilder:validation:XValidation:rule="!has(self.sts) || !has(self.sts.certSecretRef) || self.sts.provider == 'ldap'",message="sts.certSecretRef is only supported for the ldap sts provider"
// +kubebuilder:validation:XValidation:rule="self.provider != 'generic' || !has(self.serviceAccountName)",message="serviceAccountName is not supported for the generic provider"
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || !has(self.serviceAccountName)",message="cannot set both secretRef and serviceAccountName"
type BucketSpec struct {
	// Provider of the bucket: generic (the default: any S3-compatible server, with the keys of
	// secretRef or none), aws (S3 with the AWS workload identity when no secretRef is set), gcp
	// (Google Cloud Storage) or azure (Azure Blob Storage; bucketName is the container).
	// +optional
	// +kubebuilder:default=generic
	// +kubebuilder:validation:Enum=generic;aws;gcp;azure
	Provider string `json:"provider,omitempty"`
	// BucketName is the name of the bucket, e.g. manifests.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	BucketName string `json:"bucketName"`
	// Endpoint is the S3 or GCS host, host:port, without a scheme: s3.amazonaws.com,
	// minio.example.com:9000, storage.googleapis.com. The scheme is https unless insecure is
	// set. For provider azure it is the storage account's URL:
	// https://<account>.blob.core.windows.net.
	// +required
	// +kubebuilder:validation:MinLength=1
	Endpoint string `json:"endpoint"`
	// STS obtains temporary credentials from a security token service: MinIO's LDAP identity
	// (provider ldap, with spec.provider generic), or, with spec.provider aws, the STS endpoint
	// that the controller's AWS identity is exchanged at (provider aws).
	// +optional
	STS *BucketSTSSpec `json:"sts,omitempty"`
	// Insecure talks plain HTTP to the endpoint.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// Region of the bucket, e.g. eu-west-1; needed by AWS S3 for some buckets, ignored by most
	// other servers.
	// +optional
	Region string `json:"region,omitempty"`
	// Prefix keeps only the objects whose key starts with it, e.g. clusters/prod/; the
	// artifact's paths are the full keys.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// SecretRef names a Secret in the same namespace with the credentials: `accesskey` and
	// `secretkey` (provider generic and aws); `serviceaccount`, a service account key in JSON
	// (gcp); `accountKey`, `sasKey`, `tenantId` with `clientId` and `clientSecret` or
	// `clientCertificate` (optionally `clientCertificatePassword`,
	// `clientCertificateSendChain`, `authorityHost`), or `clientId` alone for a managed
	// identity (azure). Without it the bucket is read anonymously (generic) or with the
	// workload identity (aws, gcp, azure).
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// ServiceAccountName names a ServiceAccount in the same namespace whose annotations name
	// the cloud identity (provider aws, gcp, azure); the controller needs
	// --feature-gates=ObjectLevelWorkloadIdentity=true.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// CertSecretRef names a Secret in the same namespace with `ca.crt` (PEM CA of the endpoint)
	// and optionally `tls.crt` and `tls.key` (client certificate).
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`
	// ProxySecretRef names a Secret in the same namespace with the HTTP(S) proxy that every
	// connection of this object goes through: `address`, and optionally `username` and
	// `password`.
	// +optional
	ProxySecretRef *meta.LocalObjectReference `json:"proxySecretRef,omitempty"`
	// Interval between two listings of the bucket, e.g. 1m or 10m30s; at least 1s.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="interval must be at least 1s"
	Interval metav1.Duration `json:"interval"`
	// Timeout bounds one attempt: listing, downloading and writing the artifact.
	// +optional
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Ignore holds patterns in .gitignore syntax of object keys to leave out. When set it
	// replaces the default list (CI and Git metadata, as for GitRepository); a `.sourceignore`
	// object at the root of the bucket (or of the prefix) applies on top of either.
	// +optional
	Ignore *string `json:"ignore,omitempty"`
	// Suspend stops listing; the last artifact stays served.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// BucketSTSSpec names a security token service that issues temporary credentials.
// +kubebuilder:validation:XValidation:rule="self.provider != 'aws' || self.endpoint.matches('^https://')",message="sts.endpoint of provider aws must be https"
type BucketSTSSpec struct {
	// Provider of the STS: ldap (MinIO's AssumeRoleWithLDAPIdentity) or aws (the AWS STS endpoint
	// used with spec.provider aws).
	// +required
	// +kubebuilder:validation:Enum=aws;ldap
	Provider string `json:"provider"`
	// Endpoint of the STS, an http or https URL, e.g. https://minio.example.com.
	// +required
	// +kubebuilder:validation:Pattern="^(http|https)://.*$"
	Endpoint string `json:"endpoint"`
	// SecretRef names a Secret in the same namespace with the LDAP `username` and `password`.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
	// CertSecretRef names a Secret in the same namespace with `ca.crt` (PEM CA of the STS
	// endpoint) and optionally `tls.crt` and `tls.key`.
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`
}

// BucketStatus is what the controller observed and published.
type BucketStatus struct {
	// ObservedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Reconciling, Stalled, ArtifactInStorage, FetchFailed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Artifact is the tarball of the bucket's objects; its revision is sha256:<hex>, the digest
	// of the sorted index of the published object keys and their ETags.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`
	// ObservedIgnore is the spec.ignore that the artifact was built with.
	// +optional
	ObservedIgnore *string `json:"observedIgnore,omitempty"`
	// ObservedPrefix is the spec.prefix that the artifact was built with.
	// +optional
	ObservedPrefix string `json:"observedPrefix,omitempty"`
	// ObservedIndex is the digest of the whole listing (every key and ETag under the prefix,
	// ignored ones and .sourceignore included) that the artifact was built from: an unchanged
	// listing downloads nothing.
	// +optional
	ObservedIndex               string `json:"observedIndex,omitempty"`
	meta.ReconcileRequestStatus `json:",inline"`
}

// Bucket lists an object storage bucket (S3-compatible, Google Cloud Storage or Azure Blob
// Storage) and publishes its objects as a tarball artifact.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=plumb
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.artifact.revision"
// +kubebuilder:printcolumn:name="Endpoint",type="string",JSONPath=".spec.endpoint",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type Bucket struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec BucketSpec `json:"spec"`
	// +optional
	Status BucketStatus `json:"status,omitempty"`
}

// BucketList is a list of Buckets.
// +kubebuilder:object:root=true
type BucketList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Bucket `json:"items"`
}

// GetConditions returns the status conditions.
func (in *Bucket) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *Bucket) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetArtifact returns the published artifact, or nil.
func (in *Bucket) GetArtifact() *meta.Artifact { return in.Status.Artifact }

// GetTimeout returns spec.timeout, or 60s when unset.
func (in *Bucket) GetTimeout() time.Duration {
	if in.Spec.Timeout == nil || in.Spec.Timeout.Duration <= 0 {
		return 60 * time.Second
	}
	return in.Spec.Timeout.Duration
}

// GetRequeueAfter returns spec.interval.
func (in *Bucket) GetRequeueAfter() time.Duration { return in.Spec.Interval.Duration }

// GetProvider returns spec.provider, generic when unset.
func (in *Bucket) GetProvider() string {
	if in.Spec.Provider == "" {
		return BucketProviderGeneric
	}
	return in.Spec.Provider
}
