-- Every token here is valid but for one property (tests/fixtures/test_mint.py checks that
-- with PyJWT); each must be refused with SQLSTATE 28000, also when read through a policy.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
set client_min_messages = warning;
drop role if exists app_user;
reset client_min_messages;

create extension if not exists pg_oidc_authz;
-- issuer.test: the public test keys, default (asymmetric) algorithms.
insert into oidc.issuers (issuer, audiences, jwks)
values (:'iss', array[:'aud'], :'jwks_asym'::jsonb);
-- hmac.test: the shared secrets, HMAC algorithms listed explicitly as they must be.
insert into oidc.issuers (issuer, audiences, jwks, algorithms)
values (:'hmac_iss', array[:'aud'], :'jwks_hmac'::jsonb, :'algorithms_hmac'::text[]);
-- other.test: one EdDSA key, access tokens (typ at+jwt) only.
insert into oidc.issuers (issuer, audiences, jwks, required_typ)
values (:'other_iss', array[:'other_aud'], :'jwks_other'::jsonb, 'at+jwt');

create role app_user login;
create table docs (id int primary key, owner text not null);
insert into docs values (1, 'alice'), (2, 'bob');
alter table docs enable row level security;
alter table docs force row level security;
create policy docs_read on docs for select using (owner = oidc.sub());
grant select on docs to app_user;
set role app_user;

-- Controls: the same configuration accepts well-formed tokens.
-- (Session-level SET keeps each case to three lines; 00 covers transaction scope.)
set oidc.token = :'tok_alice';
select oidc.sub(), oidc.issuer(), (select count(*) from docs) as visible_docs;
set oidc.token = :'tok_alice_hs256';
select oidc.sub(), oidc.issuer();
set oidc.token = :'tok_alice_multi_aud';
select oidc.sub();
set oidc.token = :'tok_other_dave';
select oidc.sub(), oidc.issuer();
-- an empty setting means no token, not a bad one
set oidc.token = '';
select oidc.sub();

-- Time
set oidc.token = :'tok_expired';
select oidc.sub();
\echo :SQLSTATE
select * from docs;
\echo :SQLSTATE
set oidc.token = :'tok_nbf_future';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_iat_future';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_no_exp';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_exp_string';
select oidc.sub();
\echo :SQLSTATE

-- Signature and key selection
set oidc.token = :'tok_forged';
select oidc.sub();
\echo :SQLSTATE
select * from docs;
\echo :SQLSTATE
set oidc.token = :'tok_embedded_jwk';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_jku';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_empty_signature';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_unknown_kid';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_kid_traversal';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_kid_sql';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_rotated_key';
select oidc.sub();
\echo :SQLSTATE
-- keys are per issuer: other.test does not trust issuer.test's keys
set oidc.token = :'tok_other_with_main_key';
select oidc.sub();
\echo :SQLSTATE

-- Algorithms
set oidc.token = :'tok_alg_none';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_alg_None';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_alg_mismatch';
select oidc.sub();
\echo :SQLSTATE
-- HS256 "signed" with the RSA public key's PEM / JWK text, naming the RSA key's kid
set oidc.token = :'tok_hs256_rsa_pem';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_hs256_rsa_jwk';
select oidc.sub();
\echo :SQLSTATE

-- Encoding and structure
set oidc.token = :'tok_five_segments';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_two_segments';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_padded';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_not_base64';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = 'not a token';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_crit';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_duplicate_claim';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_duplicate_header';
select oidc.sub();
\echo :SQLSTATE
select set_config('oidc.token', repeat('a', 20000), false) is not null as oversized_token_set;
select oidc.sub();
\echo :SQLSTATE

-- Issuer, audience, token type
set oidc.token = :'tok_wrong_aud';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_no_aud';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_wrong_iss';
select oidc.sub();
\echo :SQLSTATE
set oidc.token = :'tok_other_id_token';
select oidc.sub();
\echo :SQLSTATE

-- A disabled issuer's tokens are refused; the configuration change applies at once.
reset role;
update oidc.issuers set enabled = false where issuer = :'other_iss';
set role app_user;
set oidc.token = :'tok_other_dave';
select oidc.sub();
\echo :SQLSTATE

reset oidc.token;
select oidc.sub();
reset role;
drop table docs;
drop role app_user;
drop extension pg_oidc_authz;
