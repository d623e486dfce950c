package registry

import (
	"context"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	signerv4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// awsEndpoints is fluxcd/pkg/auth's AWS implementation, except that the ECR clients honour the
// SDK's documented endpoint settings of the environment (AWS_ENDPOINT_URL_ECR,
// AWS_ENDPOINT_URL_ECR_PUBLIC, AWS_ENDPOINT_URL, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS), as its
// STS client already does: fluxcd/pkg/auth v0.56.0 builds the ECR client from a bare config
// that carries none of them, so a VPC endpoint could not be named.
type awsEndpoints struct{}

func (awsEndpoints) LoadDefaultConfig(ctx context.Context, optFns ...func(*config.LoadOptions) error) (awssdk.Config, error) {
	return config.LoadDefaultConfig(ctx, optFns...)
}

func (awsEndpoints) AssumeRoleWithWebIdentity(ctx context.Context, params *sts.AssumeRoleWithWebIdentityInput, options sts.Options) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	if options.BaseEndpoint == nil {
		options.BaseEndpoint = envEndpoint(sts.ServiceID)
	}
	return sts.New(options).AssumeRoleWithWebIdentity(ctx, params)
}

func (awsEndpoints) GetAuthorizationToken(ctx context.Context, cfg awssdk.Config) (any, error) {
	return ecr.NewFromConfig(withEnvConfig(cfg)).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
}

func (awsEndpoints) GetPublicAuthorizationToken(ctx context.Context, cfg awssdk.Config) (any, error) {
	return ecrpublic.NewFromConfig(withEnvConfig(cfg)).GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
}

func (awsEndpoints) DescribeCluster(ctx context.Context, params *eks.DescribeClusterInput, options eks.Options) (*eks.DescribeClusterOutput, error) {
	return eks.New(options).DescribeCluster(ctx, params)
}

func (awsEndpoints) PresignGetCallerIdentity(ctx context.Context, optFn func(*sts.PresignOptions), options sts.Options) (*signerv4.PresignedHTTPRequest, error) {
	return sts.NewPresignClient(sts.New(options)).PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, optFn)
}

// withEnvConfig adds the environment's settings as a config source, which is where the SDK's
// clients look for AWS_ENDPOINT_URL_<SERVICE>.
func withEnvConfig(cfg awssdk.Config) awssdk.Config {
	env, err := config.NewEnvConfig()
	if err != nil {
		return cfg
	}
	cfg.ConfigSources = append(cfg.ConfigSources, env)
	return cfg
}

// envEndpoint is the environment's endpoint for a service, or nil.
func envEndpoint(serviceID string) *string {
	e, err := config.NewEnvConfig()
	if err != nil || (e.IgnoreConfiguredEndpoints != nil && *e.IgnoreConfiguredEndpoints) {
		return nil
	}
	if v, found, _ := e.GetServiceBaseEndpoint(context.Background(), serviceID); found {
		return &v
	}
	if e.BaseEndpoint != "" {
		return &e.BaseEndpoint
	}
	return nil
}
